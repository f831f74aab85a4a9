"""Prometheus metrics, computed from the records at scrape time.

Workers are separate processes on possibly many hosts, so no process holds
the whole picture in memory; the database does. Gauges (jobs per state,
depth, ages, consumers) are read per scrape, counts capped and cached so a
scrape never counts a million rows. Counters (finished jobs by outcome,
retries, lost runs) and the duration histogram are all-time sums from the
job counters (``tasks.operate.figures``): the same in every web process and
across restarts, never decreasing when retention deletes rows; use ``rate()``.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tasks.jobs.config import QUEUE_NAMES
from tasks.jobs.states import ALL_STATES, JobState
from tasks.models import DURATION_BOUNDS_S, Job
from tasks.operate import figures
from tasks.operate.counts import COUNT_CAP, age_seconds, oldest_waiting, state_count
from tasks.worker import presence


class JobCollector:
    """A prometheus-client collector over the job table."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._state_gauges(now)
        yield from self._finished()

    def _state_gauges(self, now) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("intelgraph_jobs", "Jobs per queue and state (exact up to "
                                 "10000, above that a count at most 60 s old).",
                                 labels=["queue", "state"])
        depth = GaugeMetricFamily("intelgraph_queue_depth",
                                  "Jobs waiting to run (ready, not delayed).", labels=["queue"])
        oldest = GaugeMetricFamily("intelgraph_queue_oldest_waiting_age_seconds",
                                   "Age of the longest-waiting job (0 when none waits).",
                                   labels=["queue"])
        consumers = GaugeMetricFamily("intelgraph_queue_consumers",
                                      "Live workers consuming the queue.", labels=["queue"])
        missing = GaugeMetricFamily("intelgraph_queue_missing_consumers",
                                    "Workers of the queue that stopped heartbeating without a "
                                    "clean stop (killed, host down or cut off).", labels=["queue"])
        paused = GaugeMetricFamily("intelgraph_queue_paused", "1 when the queue is paused.",
                                   labels=["queue"])
        retrying = GaugeMetricFamily("intelgraph_jobs_awaiting_retry",
                                     "Delayed jobs that failed an attempt and wait to retry "
                                     "(counted up to 10000).",
                                     labels=["queue"])
        live = presence.consumers(now)
        gone = presence.missing_workers(now)
        paused_now = presence.paused_queues()
        for queue in QUEUE_NAMES:
            for state in ALL_STATES:
                count = state_count(queue, state)
                jobs.add_metric([queue, state], count.value)
                if state == JobState.WAITING:
                    depth.add_metric([queue], count.value)
            oldest.add_metric([queue], age_seconds(oldest_waiting(queue), now) or 0.0)
            consumers.add_metric([queue], len(live.get(queue, [])))
            missing.add_metric([queue], sum(queue in w.queues for w in gone))
            paused.add_metric([queue], 1 if queue in paused_now else 0)
            retrying.add_metric([queue], Job.objects.awaiting_retry(queue).order_by()
                .values("pk")[:COUNT_CAP].count())
        yield from (jobs, depth, oldest, consumers, missing, paused, retrying)

    def _finished(self) -> Iterator[Metric]:
        """All-time counters from ``figures`` (never decrease: retention folds, not forgets)."""
        finished = CounterMetricFamily(
            "intelgraph_jobs_finished", "Jobs that finished, by outcome (all time).",
            labels=["queue", "name", "outcome"])
        retries = CounterMetricFamily(
            "intelgraph_job_retries", "Failed attempts that were retried (all time).",
            labels=["queue", "name"])
        lost = CounterMetricFamily(
            "intelgraph_job_lost", "Runs whose worker died under them (all time).",
            labels=["queue", "name"])
        duration = HistogramMetricFamily(
            "intelgraph_job_duration_seconds",
            "Run time of the last attempt of finished jobs (all time).", labels=["queue", "name"])
        for (queue, name), tally in sorted(figures.totals().items()):
            for outcome in ("completed", "failed", "cancelled"):
                finished.add_metric([queue, name, outcome], getattr(tally, outcome))
            retries.add_metric([queue, name], tally.retried)
            lost.add_metric([queue, name], tally.lost)
            cumulative, running = [], 0
            for bound, n in zip((*DURATION_BOUNDS_S, float("inf")), tally.histogram, strict=True):
                running += n
                cumulative.append((_bound(bound), running))
            duration.add_metric([queue, name], cumulative, sum_value=tally.duration_sum)
        yield from (finished, retries, lost, duration)


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def render() -> bytes:
    """The exposition text of the job metrics (a fresh registry: nothing global)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector())
    return generate_latest(registry)


__all__ = ["JobCollector", "render"]
