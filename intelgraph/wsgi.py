"""WSGI entry point (gunicorn ``intelgraph.wsgi``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

application = get_wsgi_application()

# Decide (and check) the fast paths before the first request (tasks/fastpath).
from intelgraph.celery import app as _celery_app  # noqa: E402
from tasks import fastpath  # noqa: E402

fastpath.install_process(_celery_app, "web")

# Job events as Django signals in this process, and the dashboard's live updates
# (tasks/operate/live.py).
from django.conf import settings  # noqa: E402

if settings.JOB_EVENTS_IN_WEB:
    from tasks.operate.live import live_stream  # noqa: E402

    live_stream()
