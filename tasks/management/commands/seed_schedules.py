"""``manage.py seed_schedules``: create the default cron schedules (idempotent)."""

from django.core.management.base import BaseCommand

from tasks.upkeep.schedules import seed_default_schedules


class Command(BaseCommand):
    help = "Create daily-cleanup, hourly-stats and weekly-report schedules if missing."

    def handle(self, *args, **options) -> None:
        for periodic in seed_default_schedules():
            self.stdout.write(f"schedule {periodic.name}: {periodic.crontab} ({periodic.task})")
