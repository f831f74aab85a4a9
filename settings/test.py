"""Test run: a file database shared with worker subprocesses, a test-only app."""

import os
import tempfile

from settings.base import *  # noqa: F403
from settings.base import INSTALLED_APPS, TASKS
from settings.environment import database_config, env

SECRET_KEY = "test-only-key-not-secret-at-all-000000000000000000000"
INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True  # as in dev: no collectstatic before a test run
WHITENOISE_AUTOREFRESH = True

# Tests never talk to a user's Redis: tests/broker_plugin.py starts a private server
# and sets TEST_BROKER_URL; outside pytest this refused address is the default.
CELERY_BROKER_URL = env.str("TEST_BROKER_URL", default="redis://127.0.0.1:9/15")
DATABASES = {"default": {**database_config()}}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file (not :memory:) so worker subprocesses share the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str(
            "TEST_DB_FILE",
            default=os.path.join(tempfile.gettempdir(), f"intelgraph-test-{os.getpid()}.sqlite3"),
        )
    }

# The tests' webhook receivers listen on loopback, on a free port.
NOTIFY_WEBHOOK_HOSTS = ["127.0.0.1:*"]
# Django task API: the worker runs the sample @task functions of the tests.
TASKS = {"default": {**TASKS["default"], "OPTIONS": {**TASKS["default"]["OPTIONS"],
                                                     "MODULES": ["tests.testapp.standard_tasks"]}}}
