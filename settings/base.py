"""Settings shared by every environment; values come from ``settings.environment``."""

from datetime import timedelta
from pathlib import Path

from settings.celery import *  # noqa: F403  (the CELERY_ section)
from settings.environment import BASE_DIR, VAR_DIR, database_config, env  # noqa: F401

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_tasks",
    "axes",
    "tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from the app server, DEBUG or not (dev serves them from the apps'
    # folders, prod from collectstatic's hashed copies behind the proxy).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures for one
# username from one address, logins are refused for LOGIN_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
# Username *and* address: failures from one address never lock the account for others.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

# The client's address (lockouts, signup limits), by django-ipware through django-axes.
# TRUSTED_PROXY_COUNT is the number of reverse proxies in front of Django, each adding
# the address it saw to X-Forwarded-For. The client is then the entry that many places
# from the right: entries further left are the client's to invent. With 0, the header
# is ignored and REMOTE_ADDR is the client (behind a proxy everyone would share it).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
    AXES_IPWARE_PROXY_ORDER = "left-most"
    # ipware counts the hops listed after the client; the last proxy is REMOTE_ADDR.
    AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT - 1
else:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
# Extra entries on the left (a client's own header, passed on) are allowed, not fatal.
IPWARE_STRICT = False

# /signup/ creates a user and sends a welcome email: limited per client address and per
# email address (counts in Django's cache, so per web process unless CACHES is shared).
SIGNUP_ENABLED = env.bool("SIGNUP_ENABLED", default=True)
SIGNUP_LIMIT_PER_ADDRESS = (5, 3600)  # (signup posts, per seconds)
SIGNUP_LIMIT_PER_EMAIL = (3, 86400)  # (valid signups naming one email, per seconds)

ROOT_URLCONF = "intelgraph.urls"
WSGI_APPLICATION = "intelgraph.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # tasks' registration/ pages (login, password reset…, in the dashboard's look) must
        # win over django.contrib.admin's, and admin sits first in INSTALLED_APPS.
        "DIRS": [BASE_DIR / "tasks" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/queues/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# Email: SMTP when EMAIL_HOST is set, files under var/ otherwise.
EMAIL_HOST = env.str("EMAIL_HOST", default="")
EMAIL_PORT = env.int("EMAIL_PORT", default=587)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="IntelGraph <noreply@localhost>")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))

# Job service limits (see docs/architecture.md for why each exists).
JOB_MAX_PAYLOAD_BYTES = env.int("JOB_MAX_PAYLOAD_BYTES", default=64 * 1024)
# How long a committed job may stay unpublished before the relay publishes it.
JOB_RELAY_GRACE_S = env.float("JOB_RELAY_GRACE", default=10.0)
# How often the promoter looks for due delayed jobs.
JOB_PROMOTER_INTERVAL_S = env.float("JOB_PROMOTER_INTERVAL", default=0.2)
WEBHOOK_TIMEOUT_S = env.float("WEBHOOK_TIMEOUT", default=5.0)
# Hosts a notify-user webhook may POST to: "host" (default port of http/https),
# "host:port" or "host:*". Empty: webhooks are off (refused at enqueue and at the worker).
NOTIFY_WEBHOOK_HOSTS = env.list("NOTIFY_WEBHOOK_HOSTS", default=[])
# Jobs POST /api/jobs may enqueue, as "<queue>.<job name>": those meant to be asked for
# from outside. Not by default: emails (arbitrary recipients; the password reset is the
# auth flow's), django-task (runs code by path), cleanup and operator jobs.
JOB_API_ALLOWED = env.list("JOB_API_ALLOWED", default=[
    "notifications.notify-user",
    "notifications.send-reminder",
    "data-processing.process-data",
    "analytics.weekly-report",
])
SITE_URL = env.str("SITE_URL", default="http://localhost:4000")

# /metrics accepts "Authorization: Bearer <METRICS_TOKEN>" (or a staff session).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
FLOWER_URL = env.str("FLOWER_URL", default="http://127.0.0.1:5555")

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_DIR = Path(env.str("LOG_DIR", default=str(BASE_DIR / "logs")))
# Job events (waiting, active, completed, failed, retried) carry job_id, queue and
# job_name; they go to stdout and to logs/combined.log (rotated, 10 MB x 5).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "tasks.operate.logformat.JobEventFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "combined": {
            "class": "tasks.operate.logformat.CombinedLogHandler",
            "filename": str(LOG_DIR / "combined.log"),
            "maxBytes": 10 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["console", "combined"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
    },
}

# Fast paths that rely on private details of Celery/kombu/billiard (tasks/fastpath):
# "on" (all, each checked when installed), "off" (none), or a comma list of the ones to keep.
JOB_FASTPATH = env.str("JOB_FASTPATH", default="on")
# Refuse (not just warn about) a passwordless remote or evicting broker; on in prod.
JOB_STRICT_BROKER_CHECKS = env.bool("JOB_STRICT_BROKER_CHECKS", default=False)
# A job whose worker dies under it this many times is failed ("poison job").
JOB_MAX_WORKER_LOST = env.int("JOB_MAX_WORKER_LOST", default=3)
# A worker silent this long is gone: its active jobs are re-queued.
JOB_WORKER_GONE_AFTER_S = env.float("JOB_WORKER_GONE_AFTER", default=15.0)
# A gone worker is reported by the health check until it has been silent this long.
JOB_WORKER_FORGET_AFTER_S = env.float("JOB_WORKER_FORGET_AFTER", default=3600.0)
# A waiting job published this long ago with no broker message is re-published.
JOB_STUCK_AFTER_S = env.float("JOB_STUCK_AFTER", default=60.0)
# An active job still running this long after a cancel request is terminated.
JOB_CANCEL_GRACE_S = env.float("JOB_CANCEL_GRACE", default=30.0)
# How often the promoter applies retention (tasks/jobs/config.py presets).
JOB_RETENTION_EVERY_S = env.float("JOB_RETENTION_EVERY", default=60.0)
# Counters of finished jobs (tasks/upkeep/counters.py): folded from rows this often by the
# active promoter; per minute for a day, then per hour, kept this many days (then all-time).
JOB_COUNTERS_FOLD_EVERY_S = env.float("JOB_COUNTERS_FOLD_EVERY", default=10.0)
JOB_COUNTERS_MINUTES_FOR_S = env.int("JOB_COUNTERS_MINUTES_FOR", default=24 * 3600)
JOB_COUNTERS_KEEP_DAYS = env.int("JOB_COUNTERS_KEEP_DAYS", default=90)
# Live job events (tasks/operate/live.py: Django signals job_added ... job_cancelled and the
# dashboard's live updates): the web process reads the job table's changes this often, and
# sooner when a worker's task event arrives through the broker.
JOB_EVENTS_TICK_S = env.float("JOB_EVENTS_TICK", default=1.0)
# Start the stream in the web process (intelgraph/wsgi.py), so signal receivers run there.
JOB_EVENTS_IN_WEB = env.bool("JOB_EVENTS_IN_WEB", default=True)
# How often the promoter runs the reconciler.
JOB_RECONCILE_EVERY_S = env.float("JOB_RECONCILE_EVERY", default=5.0)

# Django's task API (django-tasks backport): @task functions enqueue through this service.
TASKS = {
    "default": {
        "BACKEND": "tasks.integrations.django_tasks.IntelGraphTaskBackend",
        "OPTIONS": {"DEFAULT_QUEUE": "analytics"},
    }
}
