"""Local development: ``make run``. Debug on, a fixed throwaway secret key."""

from settings.base import *  # noqa: F403
from settings.environment import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
