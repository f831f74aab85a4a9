"""How fast the dashboard answers with many job rows: a measurement, with budgets.

The default suite loads 5,000 rows (a smoke run of the same code). For the
figure in docs/operations.md run ``DASHBOARD_SCALE_ROWS=1000000
.venv/bin/python -m pytest -s tests/integration/test_dashboard_scale.py``
(about three minutes of loading).
Each page is timed cold (caches cleared) and warm (the next request).
"""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from tasks.jobs import permissions
from tasks.models import Job
from tests.integration.helpers import staff_user

ROWS = int(os.environ.get("DASHBOARD_SCALE_ROWS", "5000"))
#: A page may take this long cold, at any scale we measure (seconds).
BUDGET_S = float(os.environ.get("DASHBOARD_SCALE_BUDGET", "1.5"))
QUEUES = ["email", "notifications", "data-processing", "analytics"]
NAMES = {"email": ["send-welcome-email", "send-digest"], "notifications": ["send-reminder"],
         "data-processing": ["process-data", "record"], "analytics": ["hourly-stats"]}
#: Share of rows per state: a long history of finished jobs and a real backlog.
STATE_MIX = [("completed", 0.60), ("failed", 0.20), ("waiting", 0.15), ("delayed", 0.04),
             ("cancelled", 0.0099), ("active", 0.0001)]


def load(rows: int) -> None:
    rnd = random.Random(7)
    now = timezone.now()
    week_s = 7 * 24 * 3600
    batch: list[Job] = []
    n = 0
    for state, share in STATE_MIX:
        for _ in range(max(int(rows * share), 1)):
            queue = QUEUES[n % 4]
            created = now - timedelta(seconds=rnd.uniform(0, week_s))
            finished = created + timedelta(seconds=rnd.uniform(0.05, 30))
            done = state in ("completed", "failed", "cancelled")
            batch.append(Job(
                id=f"scale-{n:07d}", queue=queue, name=rnd.choice(NAMES[queue]), state=state,
                priority=rnd.randint(1, 5), data={"customer": f"c{n % 5000}", "n": n},
                attempts_made=1 if state != "waiting" else 0, created_at=created,
                enqueued_at=created if state == "waiting" else None,
                published_at=created if state == "waiting" else None,
                run_at=now + timedelta(hours=1) if state == "delayed" else None,
                started_at=created if done or state == "active" else None,
                finished_at=min(finished, now) if done else None,
                worker="w@host" if done else "",
            ))
            n += 1
            if len(batch) == 10_000:
                Job.objects.bulk_create(batch)
                batch = []
    Job.objects.bulk_create(batch)


def timed(client, url: str) -> tuple[float, float]:
    cache.clear()
    started = time.perf_counter()
    response = client.get(url)
    cold = time.perf_counter() - started
    assert response.status_code in (200, 503), (url, response.status_code)
    started = time.perf_counter()
    client.get(url)
    return cold, time.perf_counter() - started


@pytest.mark.timeout(1800)
def test_pages_stay_fast_with_many_rows(db, client):
    started = time.perf_counter()
    load(ROWS)
    loaded_s = time.perf_counter() - started
    client.force_login(staff_user("ops", permissions.VIEW))
    waiting = Job.objects.filter(queue="email", state="waiting").order_by("-created_at").first()
    failed = Job.objects.filter(queue="email", state="failed").order_by("created_at").first()
    deep = f"{failed.created_at.isoformat()}|{failed.pk}"
    pages = {
        "overview": "/queues/",
        "counts.json": "/queues/counts.json",
        "chart 1h": "/queues/chart.json?window=1h",
        "chart 24h": "/queues/chart.json?window=24h",
        "list completed": "/queues/email/completed/",
        "list failed, oldest page": f"/queues/email/failed/?before={deep}",
        "list waiting by name+priority": "/queues/email/waiting/?name=send-digest&priority=2",
        "list failed by date range": "/queues/email/failed/?created_from="
                                     f"{(timezone.now() - timedelta(days=3)):%Y-%m-%dT%H:%M}",
        "search data (rare hit)": "/queues/email/failed/?q=c4999",
        "job page (waiting, why)": f"/queues/jobs/{waiting.pk}",
        "metrics": "/metrics",
        "health": "/queues/health",
    }
    results = {label: timed(client, url) for label, url in pages.items()}
    vendor = connection.vendor
    print(f"\n{ROWS:,} job rows on {vendor} (loaded in {loaded_s:.0f}s); cold / warm seconds:")
    for label, (cold, warm) in results.items():
        print(f"  {label:32} {cold:7.3f}  {warm:7.3f}")
    slow = {label: round(cold, 3) for label, (cold, _) in results.items() if cold > BUDGET_S}
    assert not slow, f"over the {BUDGET_S}s budget: {slow}"
