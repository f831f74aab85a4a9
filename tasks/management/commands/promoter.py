"""``manage.py promoter``: publish delayed jobs when due and relay unpublished ones."""

import signal

from django.core.management.base import BaseCommand

from tasks.upkeep.promoter import run_forever


class Command(BaseCommand):
    help = "Run the promoter (one is active at a time; extra ones wait as standbys)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=None, help="Seconds between ticks.")

    def handle(self, *args, interval=None, **options) -> None:
        stopping = []

        def stop(signum, frame) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write("promoter started")
        run_forever(lambda: bool(stopping), interval)
        self.stdout.write("promoter stopped")
