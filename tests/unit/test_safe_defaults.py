"""What ``make run`` starts with when nobody configured anything (issue 13, point 1)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from settings.environment import BASE_DIR
from tasks.management.commands.runservice import banner


def dev_setting(name: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "WEB_BIND")}
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import "
         f"settings; print(repr(settings.{name}))"],
        cwd=BASE_DIR, env={**clean, "DJANGO_SETTINGS_MODULE": "settings.dev", **env},
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("given, debug", [(None, "False"), ("false", "False"),
                                          ("true", "True")])
def test_dev_debug_is_off_unless_asked_for(given, debug):
    env = {"DJANGO_DEBUG": given} if given is not None else {}
    assert dev_setting("DEBUG", **env) == debug


def test_dev_serves_static_files_without_debug():
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in dev_setting("MIDDLEWARE")
    assert dev_setting("WHITENOISE_USE_FINDERS") == "True"


def test_the_banner_names_every_door_and_the_bind_address():
    text = banner("127.0.0.1")
    for door in ("http://localhost:4000/queues/", "/api/jobs", "http://localhost:4000/admin/",
                 "http://127.0.0.1:5555/", "/accounts/login/", "listening on 127.0.0.1:4000"):
        assert door in text, door
    assert "listening on 0.0.0.0:4000" in banner("0.0.0.0")
