"""Importing this package registers every processor (see ``TasksConfig.ready``)."""

from tasks.processors import (
    analytics,
    data_processing,
    django_task,
    email,
    notifications,
    operations,
)

__all__ = ["analytics", "data_processing", "django_task", "email", "notifications",
           "operations"]
