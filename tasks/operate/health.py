"""The service's health: broker, database, consumers per queue, promoter, waiting ages.

``GET /queues/health`` serves ``cached_report()``: anyone sees the status and
the queue names (``public()``), the details (host names, error texts) need a
permission or the metrics token. It answers within about a second even when
the broker hangs (the probe runs in a daemon thread with a hard deadline), and
a report is reused for ``CACHE_S`` so a burst of probes opens one connection.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from celery import current_app
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from kombu import Connection

from tasks import fastpath
from tasks.fastpath.registry import FALLBACK
from tasks.jobs.config import QUEUE_NAMES, QueueName
from tasks.operate.counts import age_seconds, oldest_waiting
from tasks.upkeep import promoter
from tasks.upkeep.schedules import overdue_schedules
from tasks.worker import presence

#: The broker probe gives up after this long (seconds); the endpoint must answer within 1 s.
BROKER_TIMEOUT_S = 0.5
#: The promoter renews its lease several times a second; silence this long means it is down.
PROMOTER_STALE_AFTER_S = 30.0
#: A report is reused this long (seconds): a load balancer probing every few hundred
#: milliseconds from several hosts costs one broker connection and ~15 queries per period.
CACHE_S = 1.5
CACHE_KEY = "intelgraph:health-report"


@dataclass
class Report:
    """``problems`` make the service unhealthy (503); ``warnings`` only degrade it (200).

    A worker that vanished while others still consume its queues is a warning:
    jobs still flow, but capacity is down and its host may be cut off.
    """

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    body: dict = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def status(self) -> str:
        if self.problems:
            return "fail"
        return "degraded" if self.warnings else "ok"

    def as_json(self) -> dict:
        return {"status": self.status, "problems": self.problems, "warnings": self.warnings,
                **self.body}


def _probe_broker(url: str, timeout: float, outcome: dict) -> None:
    options = dict(current_app.conf.broker_transport_options or {})
    options.update(socket_timeout=timeout, socket_connect_timeout=timeout, max_retries=0)
    try:
        with Connection(url, connect_timeout=timeout, transport_options=options) as conn:
            conn.connect()  # Redis: the channel PINGs the server; AMQP: the handshake
        outcome["ok"] = True
    except Exception as exc:  # any failure means unreachable; its text says why
        outcome["error"] = f"{type(exc).__name__}: {exc}"


def broker_status(url: str | None = None, timeout: float = BROKER_TIMEOUT_S) -> dict:
    url = url or current_app.conf.broker_url
    outcome: dict = {}
    started = time.monotonic()
    probe = threading.Thread(target=_probe_broker, args=(url, timeout, outcome), daemon=True,
                             name="health-broker-probe")
    probe.start()
    probe.join(timeout + 0.1)
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    if outcome.get("ok"):
        return {"reachable": True, "latency_ms": elapsed_ms}
    error = outcome.get("error") or f"no answer within {timeout:.1f}s"
    return {"reachable": False, "error": error, "latency_ms": elapsed_ms}


def database_status() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"reachable": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"reachable": True}


def report(now: datetime | None = None, broker_url: str | None = None) -> Report:
    now = now or timezone.now()
    result = Report()
    broker = broker_status(broker_url)
    database = database_status()
    result.body = {"checked_at": now.isoformat(), "broker": broker, "database": database}
    if not broker["reachable"]:
        result.problems.append(f"broker unreachable ({broker['error']})")
    if not database["reachable"]:
        result.problems.append(f"database unreachable ({database['error']})")
        return result  # everything below is read from the database
    tick = promoter.last_tick()
    tick_age = age_seconds(tick, now)
    result.body["promoter"] = {"last_tick_age_s": tick_age,
                               "stale_after_s": PROMOTER_STALE_AFTER_S}
    if tick_age is None:
        result.problems.append("promoter has never ticked")
    elif tick_age > PROMOTER_STALE_AFTER_S:
        result.problems.append(f"promoter last ticked {tick_age:.0f}s ago")
    late = overdue_schedules(now)
    result.body["schedules"] = {"overdue": late}
    result.problems.extend(late)
    consumers = presence.consumers(now)
    missing = presence.missing_workers(now)
    result.body["missing_workers"] = [
        {"hostname": w.hostname, "queues": w.queues, "last_seen_age_s": age_seconds(w.last_seen, now)}
        for w in missing
    ]
    for w in missing:
        result.warnings.append(f"worker {w.hostname} stopped sending heartbeats "
                               f"{age_seconds(w.last_seen, now):.0f}s ago")
    for name, why in fastpath.fastpaths(current_app).fallbacks().items():
        result.warnings.append(f"fast path {name} fell back in this web process: {why}")
    fell_back = {}
    for worker in presence.workers(now):
        for name, state in (worker.fastpaths or {}).items():
            if state.startswith(FALLBACK):
                fell_back.setdefault(name, []).append(worker.hostname)
                result.warnings.append(f"fast path {name} fell back on worker {worker.hostname}: "
                                       f"{state[len(FALLBACK):]}")
    result.body["fastpaths"] = {"web": fastpath.status(current_app), "fell_back_on": fell_back}
    paused = presence.paused_queues()
    queues = {}
    for queue in QueueName:
        name = queue.value
        hosts = sorted(consumers.get(name, []))
        queues[name] = {
            "consumers": hosts,
            "missing_consumers": sorted(w.hostname for w in missing if name in w.queues),
            "paused": name in paused,
            "oldest_waiting_age_s": age_seconds(oldest_waiting(name), now),
        }
        # A paused queue has no consumers on purpose: that is not a fault.
        if not hosts and name not in paused:
            result.problems.append(f"no worker consumes queue {name}")
    result.body["queues"] = queues
    return result


def cached_report() -> tuple[bool, dict]:
    """``(healthy, full body)``, computed at most once per ``CACHE_S`` per cache."""
    found = cache.get(CACHE_KEY)
    if found is None:
        fresh = report()
        found = (fresh.healthy, fresh.as_json())
        cache.set(CACHE_KEY, found, CACHE_S)
    return found


def public(body: dict) -> dict:
    """What an anonymous caller may see: no host names, no error texts."""
    return {"status": body["status"], "queues": list(QUEUE_NAMES)}
