"""Production: secrets from the environment only, HTTPS behind a proxy."""

from settings.base import *  # noqa: F403
from settings.environment import env, optional_strong_secret, strong_secret

# No default, and refused when weak: 50+ characters, 10+ distinct, no placeholder word.
SECRET_KEY = strong_secret("DJANGO_SECRET_KEY")
METRICS_TOKEN = optional_strong_secret("METRICS_TOKEN")  # empty: sessions only
DEBUG = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

JOB_STRICT_BROKER_CHECKS = True
# Anyone may create an account through /signup/ only if the operator says so.
SIGNUP_ENABLED = env.bool("SIGNUP_ENABLED", default=False)

# Static files (WhiteNoise, settings/base.py) from collectstatic's hashed copies, cached.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
