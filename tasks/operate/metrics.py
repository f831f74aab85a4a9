"""Prometheus metrics, computed from the job records at scrape time.

Workers are separate processes on possibly many hosts, so no process holds
the whole picture in memory; the job table does. Gauges are read per scrape
(counts use the dashboard's capped/cached counts, so a scrape never counts a
million rows). Durations, failures and retries cover the jobs that finished
within ``WINDOW`` (at most ``WINDOW_ROWS`` of the newest): treat them as a
sliding window (``histogram_quantile`` over the raw buckets), not with ``rate()``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta

from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from tasks.jobs.config import QUEUE_NAMES
from tasks.jobs.states import ALL_STATES, FINISHED_STATES, JobState
from tasks.models import Job
from tasks.operate.counts import COUNT_CAP, age_seconds, oldest_waiting, state_count
from tasks.worker import presence

WINDOW = timedelta(hours=1)
#: At most this many of the newest finished jobs feed the windowed metrics.
WINDOW_ROWS = 50_000
DURATION_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0)


class JobCollector:
    """A prometheus-client collector over the job table."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._state_gauges(now)
        yield from self._windowed(now)

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
            retrying.add_metric([queue], Job.objects.filter(
                queue=queue, state=JobState.DELAYED, attempts_made__gt=0).order_by()
                .values("pk")[:COUNT_CAP].count())
        yield from (jobs, depth, oldest, consumers, missing, paused, retrying)

    def _windowed(self, now) -> Iterator[Metric]:
        since = now - WINDOW
        rows = (
            Job.objects.filter(queue__in=QUEUE_NAMES, state__in=FINISHED_STATES, finished_at__gte=since)
            .order_by("-finished_at")
            .values_list("queue", "name", "state", "attempts_made", "started_at", "finished_at")
            [:WINDOW_ROWS]
        )
        buckets: dict[tuple[str, str], list[int]] = defaultdict(
            lambda: [0] * (len(DURATION_BUCKETS_S) + 1))
        sums: dict[tuple[str, str], float] = defaultdict(float)
        failures: dict[tuple[str, str], int] = defaultdict(int)
        retries: dict[tuple[str, str], int] = defaultdict(int)
        for queue, name, state, attempts, started, finished in rows.iterator(chunk_size=5000):
            key = (queue, name)
            retries[key] += max(attempts - 1, 0)
            if state == JobState.FAILED:
                failures[key] += 1
            if state == JobState.CANCELLED or started is None:
                continue
            seconds = max((finished - started).total_seconds(), 0.0)
            buckets[key][bisect.bisect_left(DURATION_BUCKETS_S, seconds)] += 1
            sums[key] += seconds
        duration = HistogramMetricFamily(
            "intelgraph_job_duration_seconds",
            "Run time of the last attempt of jobs finished in the last hour.",
            labels=["queue", "name"])
        for key, counts in sorted(buckets.items()):
            cumulative, running = [], 0
            for bound, n in zip((*DURATION_BUCKETS_S, float("inf")), counts, strict=True):
                running += n
                cumulative.append((_bound(bound), running))
            duration.add_metric(list(key), cumulative, sum_value=sums[key])
        yield duration
        failed = GaugeMetricFamily("intelgraph_job_failures",
                                   "Jobs that failed for good in the last hour.",
                                   labels=["queue", "name"])
        for key, n in sorted(failures.items()):
            failed.add_metric(list(key), n)
        yield failed
        retried = GaugeMetricFamily("intelgraph_job_retries",
                                    "Retried attempts of the jobs finished in the last hour.",
                                    labels=["queue", "name"])
        for key, n in sorted(retries.items()):
            retried.add_metric(list(key), n)
        yield retried


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def render() -> bytes:
    """The exposition text of the job metrics (a fresh registry: nothing global)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector())
    return generate_latest(registry)


__all__ = ["JobCollector", "render"]
