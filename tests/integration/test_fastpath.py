"""The fast paths on real workers: installed with the pinned versions, or off loudly.

Every fast path relies on a private detail of Celery, kombu or billiard
(tasks/fastpath). These tests show, on real worker processes, that each one
is on where it applies, that an upstream detail that changed turns it off
with a warning and a ``degraded`` health check, and that a fast path that
raises at publish time hands the job to the stock path instead of losing it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings

from tasks import fastpath
from tasks.fastpath import templates
from tasks.fastpath.registry import Fastpaths
from tasks.models import WorkerHeartbeat
from tasks.operate import health
from tasks.queues import QueueName, add_job
from tests import processes
from tests.integration.helpers import wait_state
from tests.processes import wait_for

REQUIREMENTS = Path(settings.BASE_DIR) / "requirements.txt"
WORKER_SIDE = {"unacked-after-pool-write"}
REDIS_ONLY = {"redis-clients", "redis-push", "unacked-after-pool-write"}


def _heartbeat(hostname_prefix: str) -> dict:
    def found():
        beat = WorkerHeartbeat.objects.filter(hostname__startswith=hostname_prefix).first()
        return beat.fastpaths if beat and beat.fastpaths else None

    return wait_for(found, 30, message=f"a heartbeat of {hostname_prefix} with fast paths")


def test_each_fast_path_names_the_versions_pinned_in_requirements():
    pins = dict(re.findall(r"^([a-z0-9-]+)==([^\s;\\]+)", REQUIREMENTS.read_text(), re.M))
    for path in fastpath.FAST_PATHS:
        for distribution, version in path.written_for:
            assert pins[distribution] == version, (path.name, distribution)


def test_a_real_worker_runs_every_fast_path_that_applies(service):
    states = _heartbeat("shared@")
    assert set(states) == set(fastpath.NAMES)
    wanted = settings.JOB_FASTPATH.strip().lower()
    redis = current_app.conf.broker_url.startswith("redis")
    for name, state in states.items():
        if wanted == "off":
            assert state == "off (by configuration)", (name, state)
        elif name in REDIS_ONLY and not redis:
            assert state.startswith("off ("), (name, state)
        else:
            assert state == "on", (name, state)


def test_a_worker_on_a_changed_celery_falls_back_warns_and_degrades_health(service, tmp_path):
    """Celery with another ``kwargsrepr`` limit: the templates would differ from its messages."""
    code = ("import sys; import celery.app.amqp as amqp; amqp.AMQP.kwargsrepr_maxsize = 512; "
            "from celery.__main__ import main; sys.argv[0] = 'celery'; sys.exit(main())")
    worker = processes.worker(current_app.conf.broker_url, tmp_path, "changed",
                              queues="analytics", concurrency=1, JOB_FASTPATH="on")
    worker.args = [sys.executable, "-c", code, *worker.args[1:]]
    worker.start()
    try:
        states = _heartbeat("changed@")
        assert states["message-templates"] == (
            "fallback: Celery's kwargsrepr_maxsize is 512, not 1024")
        assert "fast path message-templates is off" in worker.log_text()
        report = wait_for(lambda: (r := health.report()).warnings and not r.problems and r, 15,
                          message="a health report with warnings")
        assert report.status == "degraded", report.problems
        assert any("fast path message-templates fell back on worker changed@" in warning
                   for warning in report.warnings), report.warnings
        job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "changed"})
        wait_state(job_id, "completed")  # whichever worker ran it
    finally:
        worker.stop()


@pytest.fixture
def own_fastpaths(monkeypatch) -> Fastpaths:
    """This process's fast paths, all wanted, for the test only."""
    paths = Fastpaths(frozenset(fastpath.NAMES))
    monkeypatch.setitem(current_app.__dict__, "intelgraph_fastpaths", paths)
    return paths


def test_a_fast_path_that_raises_hands_its_jobs_to_the_stock_path(service, own_fastpaths,
                                                                  monkeypatch, caplog):
    def broken(self, *args, **kwargs):
        raise KeyError("headers")  # as if Celery's message layout had changed

    monkeypatch.setattr(templates.Template, "fill", broken)
    monkeypatch.setattr(templates, "verify", lambda *args: None)  # it breaks only when used

    job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "stock"})

    wait_state(job_id, "completed")
    assert own_fastpaths.fallbacks() == {"message-templates": "it raised KeyError: 'headers'"}
    assert "fast path message-templates is off" in caplog.text
    report = health.report()
    assert "fast path message-templates fell back in this web process: it raised KeyError: " \
           "'headers'" in report.warnings
    assert report.status in ("degraded", "fail")  # degraded at least, whatever else is wrong
    second = add_job(QueueName.ANALYTICS, "record-analytics", {"key": "stock-2"})
    wait_state(second, "completed")  # the stock path from now on, without a new warning
    assert caplog.text.count("fast path message-templates is off") == 1


def test_with_every_fast_path_off_jobs_still_run(service, monkeypatch):
    paths = Fastpaths(frozenset())
    monkeypatch.setitem(current_app.__dict__, "intelgraph_fastpaths", paths)

    job_ids = [add_job(QueueName.ANALYTICS, "record-analytics", {"key": f"off-{n}"})
               for n in range(3)]

    for job_id in job_ids:
        wait_state(job_id, "completed")
    states = fastpath.status(current_app)
    assert {name: states[name] for name in set(states) - WORKER_SIDE} == dict.fromkeys(
        set(states) - WORKER_SIDE, "off (by configuration)")
