"""The one Celery app of the project.

All configuration lives in Django settings under the ``CELERY_`` namespace
(see ``settings/celery.py``); nothing but wiring belongs here.
"""

import os

from celery import Celery

from settings import OWNER_ONLY_UMASK
from tasks.worker.bootstep import JobWorkerStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
os.umask(OWNER_ONLY_UMASK)  # owner-only var/ and logs/ from the first file on

# Revokes cancel the job on record first (tasks/integrations/revokes.py).
app = Celery("intelgraph", control="tasks.integrations.revokes:JobControl")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Heartbeats, queue pauses and orphan recovery in every worker (tasks/worker/bootstep.py).
app.steps["consumer"].add(JobWorkerStep)
