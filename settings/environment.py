"""The one place that reads the process environment.

Every variable the service understands is read here (and listed in
``.env.example``); settings modules import the values, nothing else calls
``os.environ`` for configuration.
"""

from pathlib import Path
from urllib.parse import quote

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


def redis_url() -> str:
    """``REDIS_URL`` if set, else a URL built from the four ``REDIS_*`` parts."""
    explicit = env.str("REDIS_URL", default="")
    if explicit:
        return explicit
    host = env.str("REDIS_HOST", default="127.0.0.1")
    port = env.int("REDIS_PORT", default=6379)
    password = env.str("REDIS_PASSWORD", default="")
    db = env.int("REDIS_QUEUE_DB", default=1)
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


def broker_url() -> str:
    """``CELERY_BROKER_URL`` (e.g. ``amqp://``) wins over the Redis settings."""
    return env.str("CELERY_BROKER_URL", default="") or redis_url()


def database_config() -> dict:
    """``DATABASE_URL``, defaulting to a SQLite file under ``var/``.

    SQLite runs in WAL mode with a busy timeout and IMMEDIATE transactions so
    that several worker processes can write without "database is locked".
    """
    default = f"sqlite:///{VAR_DIR / 'intelgraph.sqlite3'}"
    config = env.db_url("DATABASE_URL", default=default)
    if config["NAME"] == str(VAR_DIR / "intelgraph.sqlite3"):
        VAR_DIR.mkdir(exist_ok=True)  # a fresh clone has no var/ yet
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config.setdefault("OPTIONS", {}).update(
            {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    "PRAGMA busy_timeout=30000;"
                ),
            }
        )
    # Keep connections across jobs (with CELERY_DB_REUSE_MAX, settings/celery.py).
    config.setdefault("CONN_MAX_AGE", 600)
    config.setdefault("CONN_HEALTH_CHECKS", True)
    return config
