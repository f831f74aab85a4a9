"""The soak's verdict: every id a producer saw committed, judged by its plan.

Reads the producers' logs (``producer.Logs``) and the database after the
drain. Figures: lost (not finished), duplicate side effects, unexpected
outcomes (finished otherwise than planned or asked), missing effects,
rolled-back jobs that exist or ran, retries that started before their
backoff, cron firings missing while a beat was up or not run exactly once.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db.models import Count
from django.utils.dateparse import parse_datetime

from tasks.jobs.backoff import next_delay_ms
from tasks.jobs.states import FINISHED_STATES
from tasks.models import Job
from tests.testapp.models import Effect, Execution

CHUNK = 2000


def read_log(out: Path, kind: str) -> list[dict]:
    records = []
    for path in sorted(out.glob(f"producer-*.{kind}.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return records


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _rows(ids: list[str], *fields: str) -> dict[str, tuple]:
    rows: dict[str, tuple] = {}
    for chunk in _chunks(ids):
        rows.update((row[0], row[1:]) for row in
                    Job.objects.filter(pk__in=chunk).values_list("id", *fields))
    return rows


def _effects() -> Counter[str]:
    return Counter(dict(Effect.objects.values("job_id").annotate(n=Count("id"))
                        .values_list("job_id", "n")))


@dataclass
class Report:
    seed: int
    size: int
    figures: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def problem(self, figure: str, detail: str) -> None:
        self.figures[figure] += 1
        if len(self.examples) < 20:
            self.examples.append(f"{figure}: {detail}")

    def line(self) -> str:
        order = ("committed", "rolled_back", "in_doubt", "in_doubt_committed", "lost",
                 "duplicate_effects", "unexpected", "missing_effects", "rollback_leaks",
                 "retry_gaps_checked", "retry_gap_violations", "cron_firings", "cron_missed",
                 "cron_not_once", "cron_seconds_judged", "cron_seconds_without_beat", "completed", "failed",
                 "failed_by_injected_faults", "cancelled", "executions")
        shown = " ".join(f"{k}={self.figures[k]}" for k in order)
        return f"seed={self.seed} size={self.size} {shown}"

    @property
    def failures(self) -> dict[str, int]:
        bad = ("lost", "duplicate_effects", "unexpected", "missing_effects", "rollback_leaks",
               "retry_gap_violations", "cron_missed", "cron_not_once")
        return {k: self.figures[k] for k in bad if self.figures[k]}


def _allowed(plan: str, cancel: str | None) -> dict[str, set[int]]:
    """Final state -> the effect counts that state may have, for a plan and a cancel answer."""
    if plan in ("ok", "flaky"):
        return {"completed": {1}}
    if plan in ("fail", "permanent"):
        return {"failed": {0}}
    if cancel == "cancelled":  # taken while waiting or delayed: it never ran again
        return {"cancelled": {0}}
    if cancel == "too-late":  # it had completed before the cancel arrived
        return {"completed": {1}}
    # Asked while active (or the answer was lost): stopped at a check, or past its last
    # check and done; a run killed after its effect is ended as cancelled, effect kept.
    return {"completed": {1}, "cancelled": {0, 1}}


#: What the chaos's database session terminations raise where they hit.
INJECTED_DB_FAULTS = ("django.db.utils.OperationalError", "django.db.utils.InterfaceError")


def failed_by_injected_faults(plan: str, errors: list[dict]) -> bool:
    """A job planned to complete whose attempts all failed as planned or by the chaos.

    A database session terminated while the job's own code ran (its
    ``Execution`` or effect write) fails that attempt, as any error of a
    processor does (BullMQ and Sidekiq count it too); on the last attempt of
    a flaky job that is a permanent failure. Accepted only when every failed
    attempt is either a planned one or such a fault raised in the job's code
    (its traceback passes through the soak's processors), so a fault the
    service itself turned into a failure still counts as unexpected.
    """
    if plan not in ("ok", "flaky") or not errors:
        return False
    injected = 0
    for entry in errors:
        if entry.get("exception") in INJECTED_DB_FAULTS:
            if "soak_processors.py" not in entry.get("traceback", ""):
                return False
            injected += 1
        elif not (plan == "flaky" and "planned flaky failure" in entry.get("error", "")):
            return False
    return injected > 0


def check_jobs(report: Report, out: Path) -> None:
    committed = {r["id"]: r for r in read_log(out, "committed")}
    doubt = {r["id"]: r for r in read_log(out, "doubt")}
    cancels = {r["id"]: r["result"] for r in read_log(out, "cancels")}
    existing_doubt = set(_rows(list(doubt), "state"))
    report.figures["in_doubt"] = len(doubt)
    report.figures["in_doubt_committed"] = len(existing_doubt)
    judged = {**committed, **{i: doubt[i] for i in existing_doubt}}
    report.figures["committed"] = len(committed)
    rows = _rows(list(judged), "state", "errors", "attempts_made", "started_at", "backoff",
                 "published_at", "enqueued_at")
    effects = _effects()
    for job_id, record in judged.items():
        row = rows.get(job_id)
        state = row[0] if row else None
        count = effects.get(job_id, 0)
        if state not in FINISHED_STATES:
            report.problem("lost", f"{job_id} {record['plan']} is {state}"
                           + (f" (attempts {row[2]}, published {row[5]}, enqueued {row[6]})"
                              if row else ""))
            continue
        report.figures[state] += 1
        if count > 1:
            report.problem("duplicate_effects", f"{job_id} {record['plan']}: {count} effects")
        elif state == "completed" and count == 0:
            report.problem("missing_effects", f"{job_id} {record['plan']}")
        allowed = _allowed(record["plan"], cancels.get(job_id))
        if state == "failed" and count == 0 and failed_by_injected_faults(record["plan"], row[1]):
            report.figures["failed_by_injected_faults"] += 1
        elif state not in allowed or (count <= 1 and count not in allowed[state]):
            last = (row[1] or [{}])[-1].get("error", "")
            report.problem("unexpected", f"{job_id} {record['plan']} cancel="
                           f"{cancels.get(job_id)} ended {state} with {count} effects {last}")
        check_retry_gaps(report, job_id, *row[1:5])


def check_retry_gaps(report: Report, job_id: str, errors: list[dict], attempts_made: int,
                     started_at: datetime | None, backoff: dict) -> None:
    """Each retried attempt started no sooner than its failure plus its backoff.

    Entries of lost runs (``started_at`` empty, written by ``tasks.worker.lost``) are
    not failures with a backoff: the run is given back at once and keeps its number.
    """
    failures = [e for e in errors or [] if e.get("started_at")]
    starts = [(e["attempt"], parse_datetime(e["started_at"])) for e in failures]
    if started_at is not None:
        starts.append((attempts_made, started_at))
    for entry in failures:
        attempt = entry["attempt"]
        later = [start for n, start in starts if n > attempt]
        if not later:
            continue
        earliest = parse_datetime(entry["failed_at"]) + timedelta(
            milliseconds=next_delay_ms(backoff, attempt))
        report.figures["retry_gaps_checked"] += 1
        if min(later) < earliest - timedelta(milliseconds=1):
            report.problem("retry_gap_violations", f"{job_id} attempt {attempt + 1} started "
                           f"{(earliest - min(later)).total_seconds():.3f}s early")


def check_rollbacks(report: Report, out: Path) -> None:
    """Nothing of a rolled-back transaction exists or ran."""
    ids = [r["id"] for r in read_log(out, "rolledback")]
    report.figures["rolled_back"] = len(ids)
    for chunk in _chunks(ids):
        for job_id in Job.objects.filter(pk__in=chunk).values_list("id", flat=True):
            report.problem("rollback_leaks", f"{job_id} exists")
        for job_id in Execution.objects.filter(job_id__in=chunk).values_list("job_id", flat=True):
            report.problem("rollback_leaks", f"{job_id} ran")


def beat_runs(log: str) -> list[tuple[float, float]]:
    """When each beat process was firing: (its first firing, its last log line), epoch s.

    Read from beat's own log (DEBUG: a line at least every loop, 1 s) rather than
    from when the chaos started or killed it: a beat takes seconds to boot on a
    loaded machine, and one that exits by itself is only noticed later.
    """
    runs: list[tuple[float, float]] = []
    first = last = None
    for line in log.splitlines():
        if "celery beat v" in line and "is starting" in line:
            if first is not None:
                runs.append((first, last))
            first = last = None
            continue
        match = _STAMP.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(
            tzinfo=UTC).timestamp()
        if first is None and "Sending due task" in line:
            first = stamp
        if first is not None:
            last = stamp
    if first is not None:
        runs.append((first, last))
    return runs


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def check_cron(report: Report, schedules: Iterable[str], since: float, until: float,
               runs: list[tuple[float, float]]) -> None:
    """Each firing ran once; no second is missing while a beat process was firing.

    Seconds when no beat ran (killed, or exited when the broker died, until it is
    restarted) are not judged: a restarted beat fires the buckets it missed, back to
    ``MAX_CATCH_UP_S`` (``tasks.upkeep.scheduler``); the seconds still without a
    firing there are counted apart (``cron_seconds_without_beat``).
    """
    effects = _effects()
    judged = set()
    for start, end in runs:
        judged |= set(range(int(max(start, since)) + 1, int(min(end, until)) - 1))
    report.figures["cron_seconds_judged"] = len(judged)
    for name in schedules:
        prefix = f"cron:{name}:"
        rows = dict(Job.objects.filter(pk__startswith=prefix).values_list("id", "state"))
        fired = {int(datetime.strptime(i[len(prefix):], "%Y-%m-%dT%H:%M:%SZ")
                     .replace(tzinfo=UTC).timestamp()) for i in rows}
        report.figures["cron_firings"] += len(rows)
        for job_id, state in rows.items():
            if state != "completed" or effects.get(job_id, 0) != 1:
                report.problem("cron_not_once", f"{job_id} {state}, "
                               f"{effects.get(job_id, 0)} effects")
        for second in sorted(judged - fired):
            stamp = datetime.fromtimestamp(second, UTC).isoformat()
            report.problem("cron_missed", f"{name} at {stamp}")
        if fired:
            span = set(range(min(fired), max(fired) + 1))
            report.figures["cron_seconds_without_beat"] += len(span - fired - judged)


def count_executions(report: Report) -> None:
    report.figures["executions"] = Execution.objects.filter(key="chaos").count()
