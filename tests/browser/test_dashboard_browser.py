"""The dashboard in a real headless browser (Debian's chromium driven by Playwright).

Logs in, sees the counts (and sees them refresh without a reload), opens a
failed job, retries it and watches it complete; then, with no worker
running, sees why a waiting job does not run. A second visitor watches the
overview and a job page update live from the job events (server-sent
events), with polling slowed to once a minute while the stream is up. Skipped, with the reason
printed, only where chromium or Playwright is not installed (``.ci/run``
installs chromium).

``DASHBOARD_SCREENSHOT=docs/dashboard.png`` also saves a screenshot of the
overview there (how the one in ``docs/`` was made).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone

from tasks.jobs import permissions
from tasks.models import Job
from tasks.queues import QueueName, add_job
from tests.integration.helpers import staff_user, wait_state, worker_stopped

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright is not installed (requirements-dev.txt)")
if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
    pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does)",
                allow_module_level=True)


def screenshot(page, path: str) -> None:
    """The overview over an hour of made-up history, saved as a PNG; the history is removed."""
    rnd = random.Random(3)
    now = timezone.now()
    queues = ["email", "notifications", "data-processing", "analytics"]
    rows = []
    for i in range(2400):
        ago = timedelta(seconds=rnd.uniform(0, 3600))
        state = "failed" if rnd.random() < 0.04 else "completed"
        rows.append(Job(id=f"shot-{i}", queue=queues[i % 4], name="record", state=state,
                        created_at=now - ago - timedelta(seconds=2), started_at=now - ago
                        - timedelta(seconds=1), finished_at=now - ago))
    rows += [Job(id=f"shot-w{i}", queue="email", name="send-welcome-email", state="waiting",
                 created_at=now - timedelta(seconds=40 - i), enqueued_at=now - timedelta(
                     seconds=40 - i)) for i in range(12)]
    rows += [Job(id=f"shot-d{i}", queue="notifications", name="send-reminder", state="delayed",
                 created_at=now, run_at=now + timedelta(hours=24)) for i in range(5)]
    Job.objects.bulk_create(rows)
    cache.clear()  # the chart series of this minute were cached by the first visit
    try:
        page.reload()
        page.wait_for_timeout(2000)  # counts refreshed, chart drawn
        page.screenshot(path=path, full_page=True)
    finally:
        Job.objects.filter(pk__startswith="shot-").delete()


@pytest.fixture
def browser_page(monkeypatch) -> Iterator:
    # Playwright's sync API runs an event loop in this thread; the ORM calls the
    # test makes between browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def test_operator_retries_a_failed_job_and_sees_why_another_waits(service, live_server,
                                                                   browser_page):
    page = browser_page
    expect = sync_api.expect
    staff_user("ops", permissions.VIEW, permissions.OPERATE, permissions.REMOVE)
    failed = add_job(QueueName.DATA_PROCESSING, "fails-first-runs", {"key": "browser"},
                     attempts=1)
    wait_state(failed, "failed")

    # Log in: the dashboard sends an anonymous visitor to the admin login.
    page.goto(f"{live_server.url}/queues/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw-12345678")
    page.click("input[type=submit]")
    expect(page.locator("h1")).to_have_text("Queues")
    cell = page.locator('[data-count="data-processing:failed"]')
    expect(cell).to_have_text("1")

    # Counts refresh without a reload.
    Job.objects.create(id="extra-failed", queue="data-processing", name="record",
                       state="failed", created_at=timezone.now() - timedelta(minutes=1))
    expect(cell).to_have_text("2", timeout=15_000)
    Job.objects.filter(pk="extra-failed").delete()
    if os.environ.get("DASHBOARD_SCREENSHOT"):
        screenshot(page, os.environ["DASHBOARD_SCREENSHOT"])
        expect(cell).to_have_text("1")

    # Open the failed job from its listing, retry it, watch it complete.
    cell.click()
    page.click(f'a[href="/queues/jobs/{failed}"]')
    expect(page.locator("#job-state")).to_have_text("failed")
    expect(page.locator("pre.traceback").first).to_contain_text("TransientJobError: not yet")
    page.click("#retry")
    # The page follows the job live and reloads as it moves on, so the one-time
    # "retried" message may be gone already; the job's log keeps who retried it.
    expect(page.locator("#job-state")).to_have_text("completed", timeout=30_000)
    expect(page.locator("#job-result")).to_contain_text("ok")
    expect(page.locator("table.log")).to_contain_text("retried by ops")

    # With no worker running, a waiting job says why it does not run.
    with worker_stopped(service["worker"]):
        waiting = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "stuck"})
        page.goto(f"{live_server.url}/queues/jobs/{waiting}")
        expect(page.locator("#job-state")).to_have_text("waiting")
        expect(page.locator("#why-not-running")).to_contain_text(
            "No worker consumes queue analytics")
    wait_state(waiting, "completed", timeout=60)


def test_the_overview_and_a_job_page_update_live(service, live_server, browser_page):
    page = browser_page
    expect = sync_api.expect
    staff_user("watcher", permissions.VIEW)
    page.goto(f"{live_server.url}/queues/")
    page.fill("#id_username", "watcher")
    page.fill("#id_password", "pw-12345678")
    page.click("input[type=submit]")
    expect(page.locator("#live")).to_have_text("live", timeout=15_000)
    cell = page.locator('[data-count="analytics:completed"]')
    expect(cell).to_have_text("0")

    # While the stream is live the counts are polled once a minute: only the job
    # events can bring the new count this soon.
    add_job(QueueName.ANALYTICS, "record-analytics", {"key": "live-1"})
    expect(cell).to_have_text("1", timeout=15_000)

    # A job page follows its job through the stream (no polling while live): it
    # shows the job active with its progress moving, then completed.
    job_id = add_job(QueueName.ANALYTICS, "reports-progress", {"key": "live-2", "steps": 5,
                                                                 "pause": 1.0},
                     delay=timedelta(seconds=3))
    page.goto(f"{live_server.url}/queues/jobs/{job_id}")
    expect(page.locator("#job-state")).to_have_text("delayed")
    expect(page.locator("#live")).to_have_text("live", timeout=15_000)
    expect(page.locator("#job-state")).to_have_text("active", timeout=20_000)
    page.wait_for_function(
        "() => { const p = document.querySelector('#job-progress progress');"
        " return p !== null && p.value >= 40 && p.value < 100; }", timeout=15_000)
    expect(page.locator("#job-state")).to_have_text("completed", timeout=20_000)
    expect(page.locator("#job-result")).to_contain_text("live-2")
