import threading
from typing import Any

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"
    #: This process's live job-event stream (``tasks.operate.live``), made on first use.
    live_stream: Any = None
    live_lock = threading.Lock()

    def ready(self) -> None:
        # The settings live outside the ``intelgraph`` package, so nothing else
        # guarantees the project's Celery app is loaded (and current) in every
        # Django process: web, management commands, beat, workers.
        import intelgraph.celery  # noqa: F401

        # Register every processor in every process, so job names resolve alike.
        from tasks import checks, processors  # noqa: F401
