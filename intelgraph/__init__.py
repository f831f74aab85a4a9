"""IntelGraph Tasks project package: exports the Celery app so Django loads it."""

from intelgraph.celery import app as celery_app

__all__ = ("celery_app",)
