"""Local development: ``make run``. DEBUG off unless ``DJANGO_DEBUG=true``; a throwaway key.

DEBUG shows settings (the broker password among them) to anyone who triggers an
error page, so even a laptop's service keeps it off unless asked for.
"""

from settings.base import *  # noqa: F403
from settings.environment import env

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
# Static files straight from the apps' folders (no collectstatic), edits seen at once.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
