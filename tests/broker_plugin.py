"""Starts the test session's private broker before Django reads its settings.

Loaded with ``-p tests.broker_plugin`` (see pyproject.toml) so that
``TEST_BROKER_URL`` is in the environment when ``settings.test`` is
imported. A Redis-compatible server on a free port (``redis-server`` on
PATH, else the bundled ``valkey-server``), never the user's Redis. When
``TEST_BROKER_URL`` is already set (the RabbitMQ matrix run), that broker
is used instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_server = None
_data_dir = None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args) -> None:
    global _server, _data_dir
    # Importing ``intelgraph`` loads the Celery app, which defaults the settings
    # module to ``settings.dev``: name the test settings first.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.test")
    if os.environ.get("TEST_BROKER_URL"):
        return
    from intelgraph.bundled_redis import BundledRedis

    _data_dir = Path(tempfile.mkdtemp(prefix="intelgraph-test-redis-"))
    # AOF on, as in production: the reliability tests kill -9 and restart it.
    _server = BundledRedis(_data_dir, appendonly=True, prefer_system=True)
    _server.start()
    os.environ["TEST_BROKER_URL"] = _server.url(db=1)


def private_server():
    """The session's private server (None when ``TEST_BROKER_URL`` named another broker)."""
    return _server


def pytest_unconfigure(config) -> None:
    if _server is not None:
        _server.stop()
        os.environ.pop("TEST_BROKER_URL", None)
    if _data_dir is not None:
        shutil.rmtree(_data_dir, ignore_errors=True)
