from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register every processor in every process (web, worker, beat, promoter),
        # so job names resolve the same way everywhere.
        from tasks import processors  # noqa: F401
