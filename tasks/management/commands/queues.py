"""``manage.py queues stats|list|retry-failed|clean|pause|resume``: the dashboard in a terminal."""

from __future__ import annotations

import getpass
import re
from collections.abc import Sequence
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tasks.jobs.config import QUEUE_NAMES, QueueName
from tasks.jobs.limits import MAX_CLEAN_AGE
from tasks.jobs.states import ALL_STATES, CLEANABLE_SINCE, JobState
from tasks.models import Job
from tasks.operate import actions, counts, figures
from tasks.operate.dashboard import queries
from tasks.upkeep import retention
from tasks.worker import presence

DURATION = re.compile(r"^([0-9]{1,15})([smhd])$")  # ASCII digits; int() takes any
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> timedelta:
    match = DURATION.match(text.strip())
    if not match:
        raise CommandError(f"age {text!r} must look like 30s, 15m, 24h or 7d")
    seconds = int(match.group(1)) * UNIT_S[match.group(2)]
    if seconds > MAX_CLEAN_AGE.total_seconds():  # ``timedelta`` itself overflows further out
        raise CommandError(f"age {text!r} is over the {MAX_CLEAN_AGE.days}-day limit")
    return timedelta(seconds=seconds)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(v.rjust(w) if v.replace(",", "").replace("≈", "").isdigit()
                         else v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


class Progress:
    """A one-line progress bar (drawn on a terminal, or anywhere when forced)."""

    def __init__(self, total: int, label: str, stream, force: bool = False) -> None:
        self.total, self.label, self.done = max(total, 0), label, 0
        self.stream = stream
        self.enabled = force or stream.isatty()

    def _write(self, text: str) -> None:
        self.stream.write(text, ending="")

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            width = 30
            filled = width if not self.total else min(width, width * self.done // self.total)
            self._write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                        f"{self.done:,}/{self.total:,}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._write("\n")


class Command(BaseCommand):
    help = "Queue statistics, listings and operator actions (retry, clean, pause, resume)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=CommandParser)
        sub.add_parser("stats", help="counts per state, paused, consumers, oldest waiting")
        listing = sub.add_parser("list", help="jobs of a queue and state, newest first")
        listing.add_argument("queue")
        listing.add_argument("--state", default="failed", choices=ALL_STATES)
        listing.add_argument("--name", default="")
        listing.add_argument("--limit", type=int, default=20)
        retry = sub.add_parser("retry-failed", help="retry every failed job of a queue")
        retry.add_argument("queue")
        clean = sub.add_parser("clean", help="delete jobs of a state older than an age")
        clean.add_argument("queue")
        clean.add_argument("--state", default="completed",
                           choices=[s.value for s in CLEANABLE_SINCE])
        clean.add_argument("--older-than", default="24h", help="30s, 15m, 24h, 7d")
        for name in ("pause", "resume"):
            action = sub.add_parser(name, help=f"{name} a queue on every worker host")
            action.add_argument("queue")
        for action in (retry, clean):
            action.add_argument("--progress", action="store_true",
                                help="draw the progress bar even when not on a terminal")

    def handle(self, *args, **options) -> None:
        name = options["subcommand"]
        if "queue" in options:
            options["queue"] = self._queue(options["queue"])
        getattr(self, "do_" + name.replace("-", "_"))(options)

    def _queue(self, name: str) -> str:
        if name not in QUEUE_NAMES:
            raise CommandError(f"queue {name!r} is not one of: {', '.join(QUEUE_NAMES)}")
        return name

    def _by(self) -> str:
        return f"{getpass.getuser()} (manage.py queues)"

    def do_stats(self, options) -> None:
        now = timezone.now()
        consumers = presence.consumers(now)
        paused = presence.paused_queues()
        rows = []
        hour = figures.by_queue(now - timedelta(hours=1), now + timedelta(seconds=1))
        for queue in QUEUE_NAMES:
            state_counts = counts.queue_counts(queue)
            oldest = counts.age_seconds(counts.oldest_waiting(queue), now)
            done = hour.get(queue, figures.Tally())
            rows.append([queue, *(str(state_counts[s]) for s in ALL_STATES),
                         str(done.completed), str(done.failed),
                         "paused" if queue in paused else "running",
                         ", ".join(sorted(consumers.get(queue, []))) or "none",
                         queries.duration_text(oldest) or "-"])
        headers = ["queue", *ALL_STATES, "completed/1h", "failed/1h", "status", "consumers",
                   "oldest waiting"]
        self.stdout.write(table(headers, rows))
        self.stdout.write("State columns count job rows now; the /1h columns are the job "
                          "counters (retention does not change them).")

    def do_list(self, options) -> None:
        page = queries.job_page(options["queue"], options["state"],
                                queries.JobFilter(name=options["name"]),
                                size=max(options["limit"], 1))
        rows = [[j.pk, j.name, j.priority, f"{j.attempts_made}/{j.max_attempts}",
                 f"{j.created_at:%Y-%m-%d %H:%M:%S}", _last_error(j)] for j in page.jobs]
        self.stdout.write(table(["id", "name", "priority", "attempts", "created", "last error"],
                                rows))
        if page.older:
            self.stdout.write(f"… more: raise --limit (showing {len(rows)})")

    def do_retry_failed(self, options) -> None:
        queue = options["queue"]
        found = Job.objects.filter(queue=queue, state=JobState.FAILED).count()
        progress = Progress(found, f"retrying {queue}", self.stderr, options["progress"])
        retried = actions.retry_failed(queue, by=self._by(), on_batch=progress.advance)
        progress.close()
        self.stdout.write(table(["queue", "failed found", "retried"], [[queue, found, retried]]))

    def do_clean(self, options) -> None:
        queue, state = options["queue"], options["state"]
        grace = parse_age(options["older_than"])
        now = timezone.now()
        total = retention.cleanable(queue, state, now - grace).count()
        progress = Progress(total, f"cleaning {queue}", self.stderr, options["progress"])
        # In batches of retention.DELETE_BATCH: the bar moves and locks stay short.
        deleted = retention.clean(QueueName(queue), grace, state, now=now,
                                  on_batch=progress.advance)
        progress.close()
        self.stdout.write(table(["queue", "state", "older than", "deleted"],
                                [[queue, state, options["older_than"], deleted]]))

    def do_pause(self, options) -> None:
        presence.pause_queue(options["queue"], by=self._by())
        self.stdout.write(f"{options['queue']} paused: workers on every host stop taking its "
                          "jobs within a few seconds; new jobs still queue up.")

    def do_resume(self, options) -> None:
        presence.resume_queue(options["queue"], by=self._by())
        self.stdout.write(f"{options['queue']} resumed.")


def _last_error(job: Job) -> str:
    errors = job.errors or []
    text = errors[-1].get("error", "") if errors else ""
    return text if len(text) <= 60 else text[:57] + "..."
