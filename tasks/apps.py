from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The settings live outside the ``intelgraph`` package, so nothing else
        # guarantees the project's Celery app is loaded (and current) in every
        # Django process: web, management commands, beat, workers.
        import intelgraph.celery  # noqa: F401

        # Register every processor in every process, so job names resolve alike.
        from tasks import checks, processors  # noqa: F401
