"""The one place that reads the process environment.

Every variable the service understands is read here (and listed in
``.env.example``); settings modules import the values, nothing else calls
``os.environ`` for configuration.
"""

from pathlib import Path
from urllib.parse import quote

import environ
from django.core.exceptions import ImproperlyConfigured

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


def web_bind() -> str:
    """The address the web process listens on: this host only, unless ``WEB_BIND`` says."""
    return env.str("WEB_BIND", default="127.0.0.1")


def broker_configured() -> bool:
    """Whether the operator named a broker (else ``make run`` finds or starts one)."""
    return any(env.str(name, default="") for name in ("REDIS_URL", "REDIS_HOST",
                                                     "CELERY_BROKER_URL"))


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


#: Found in copied examples and tutorials (case-insensitive). Six letters or more, so a
#: random 86-character key contains one by chance about once in a million.
PLACEHOLDER_WORDS = ("change", "password", "passwd", "secret", "insecure", "placeholder",
                     "example", "default", "dev-only", "qwerty")


def weak_secret_reason(value: str, min_length: int, min_distinct: int) -> str | None:
    """Why ``value`` is not a real secret, or None. 68 × "a" is long but has one character."""
    if len(value) < min_length:
        return f"{len(value)} characters, need {min_length}+"
    distinct = len(set(value))
    if distinct < min_distinct:
        return f"only {distinct} distinct characters, need {min_distinct}+"
    lowered = value.lower()
    for word in PLACEHOLDER_WORDS:
        if word in lowered:
            return f"looks like a placeholder (contains {word!r})"
    return None


def strong_secret(name: str, min_length: int = 50, min_distinct: int = 10) -> str:
    """A required secret, refused (naming the variable, not the value) when weak."""
    value = env.str(name)
    reason = weak_secret_reason(value, min_length, min_distinct)
    if reason:
        raise ImproperlyConfigured(f"{name} is too weak: {reason}. Generate one with: "
                                   "python -c 'import secrets; print(secrets.token_urlsafe(64))'")
    return value


def optional_strong_secret(name: str, min_length: int = 32, min_distinct: int = 10) -> str:
    """Like ``strong_secret``, but empty means "not used" (e.g. no metrics token)."""
    return strong_secret(name, min_length, min_distinct) if env.str(name, default="") else ""


def basic_auth_problem(value: str) -> str | None:
    """Why a ``user:password[,user:password]`` list must not guard Flower, or None.

    Flower stores an empty value as one empty credential, which a header such as
    ``Authorization: Basic !`` matches: an empty value is refused, not "no auth".
    """
    if not value.strip():
        return "it is empty (Flower would then let anyone in)"
    for entry in value.split(","):
        user, colon, password = entry.partition(":")
        if not colon or not user.strip() or not password:
            return f"entry for {user.strip()!r} is not user:password"
        reason = weak_secret_reason(password, min_length=12, min_distinct=6)
        if reason or password.lower() == user.lower():
            return f"the password of {user!r} is weak ({reason or 'same as the user name'})"
    return None


def flower_basic_auth_given() -> str:
    """``FLOWER_BASIC_AUTH`` as set ("" when unset)."""
    return env.str("FLOWER_BASIC_AUTH", default="")


def flower_basic_auth() -> list[str]:
    """``FLOWER_BASIC_AUTH`` as Flower's list of credentials; exits when missing or weak."""
    value = flower_basic_auth_given()
    problem = basic_auth_problem(value)
    if problem:
        raise SystemExit(f"Flower refuses to start: FLOWER_BASIC_AUTH {problem}. "
                         "Set user:password with a generated password (make run makes one).")
    return value.split(",")
