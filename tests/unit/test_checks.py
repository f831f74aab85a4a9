"""System checks for Celery traps, broker safety, and production settings."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from contextlib import contextmanager

import pytest
from celery import current_app

from intelgraph.bundled_redis import BundledRedis
from settings.environment import BASE_DIR
from tasks import checks
from tasks.worker import broker_safety


@contextmanager
def conf(**changes):
    saved = {key: current_app.conf[key] for key in changes}
    current_app.conf.update(changes)
    try:
        yield
    finally:
        current_app.conf.update(saved)


REDIS_URL = "redis://127.0.0.1:9/1"  # never contacted: the checks only read the URL


def ids(problems) -> list[str]:
    return [p.id for p in problems]


def test_the_shipped_configuration_passes_every_check():
    for check in (checks.check_time_limits, checks.check_acks, checks.check_priorities,
                  checks.check_queues_consumed, checks.check_beat_timezone):
        assert check() == [], check.__name__


def test_time_limit_above_the_visibility_timeout_is_an_error():
    options = {**current_app.conf.broker_transport_options, "visibility_timeout": 120}
    with conf(broker_url=REDIS_URL, broker_transport_options=options):
        problems = checks.check_time_limits()
    assert "tasks.E001" in ids(problems)
    assert any("data-processing" in p.msg and "120s" in p.msg for p in problems)


def test_late_acks_without_reject_on_worker_lost_is_an_error():
    with conf(task_reject_on_worker_lost=False):
        assert ids(checks.check_acks()) == ["tasks.E002"]


def test_priorities_without_matching_broker_settings_are_errors():
    options = {**current_app.conf.broker_transport_options, "priority_steps": [0, 3, 6, 9]}
    with conf(broker_url=REDIS_URL, broker_transport_options=options):
        assert ids(checks.check_priorities()) == ["tasks.E003"]
    from kombu import Queue

    queues = [Queue(q.name, q.exchange, routing_key=q.routing_key) for q in current_app.conf.task_queues]
    with conf(broker_url="amqp://guest:guest@127.0.0.1:5672//", task_queues=queues):
        assert ids(checks.check_priorities()) == ["tasks.E003"] * 4


def test_a_queue_no_worker_profile_consumes_is_an_error(tmp_path, settings):
    (tmp_path / "Procfile").write_text(
        "web: manage.py runserver\nworker: celery -A intelgraph worker -Q email,notifications,analytics\n"
    )
    settings.BASE_DIR = tmp_path
    problems = checks.check_queues_consumed()
    assert ids(problems) == ["tasks.E004"]
    assert "data-processing" in problems[0].msg


def test_beat_zone_differing_from_time_zone_is_an_error(settings):
    settings.TIME_ZONE = "UTC"
    with conf(timezone="Europe/Berlin"):
        assert ids(checks.check_beat_timezone()) == ["tasks.E005"]


def test_remote_broker_without_password_is_flagged():
    assert broker_safety.broker_url_problems("redis://redis.internal.example:6379/1")
    assert not broker_safety.broker_url_problems("redis://:s3cret@redis.internal.example:6379/1")
    assert not broker_safety.broker_url_problems("redis://127.0.0.1:6379/1")


def test_evicting_policy_is_flagged_against_a_real_server(tmp_path):
    server = BundledRedis(tmp_path, appendonly=False)
    server.start()
    try:
        assert broker_safety.broker_server_problems(server.url()) == []
        import redis

        redis.Redis.from_url(server.url()).config_set("maxmemory-policy", "allkeys-lru")
        [problem] = broker_safety.broker_server_problems(server.url())
        assert "allkeys-lru" in problem
    finally:
        server.stop()


def _manage(args: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, capture_output=True,
                          text=True, env={**clean, **env}, timeout=60)


def test_check_deploy_passes_with_prod_settings_and_the_documented_environment():
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"],
                     DJANGO_SETTINGS_MODULE="settings.prod",
                     DJANGO_SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="jobs.example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("secret, message", [
    (None, "DJANGO_SECRET_KEY"),
    ("change-me", "DJANGO_SECRET_KEY is too weak: 9 characters, need 50+"),
    ("a" * 68, "DJANGO_SECRET_KEY is too weak: only 1 distinct characters"),
    ("ab" * 40, "only 2 distinct characters"),
    ("django-insecure-" + secrets.token_urlsafe(48), "placeholder (contains 'insecure')"),
    ("change-me-" + secrets.token_urlsafe(48), "placeholder (contains 'change')"),
    ("your-Secret-key-goes-here-" + secrets.token_urlsafe(40), "placeholder"),
])
def test_prod_refuses_to_start_without_a_real_secret(secret, message):
    env = {"DJANGO_SETTINGS_MODULE": "settings.prod", "ALLOWED_HOSTS": "jobs.example.com"}
    if secret:
        env["DJANGO_SECRET_KEY"] = secret
    result = _manage(["check"], **env)
    assert result.returncode != 0
    assert message in result.stderr
    if secret:
        assert secret not in result.stderr  # the error names the variable, not its value


def test_prod_refuses_a_weak_metrics_token_and_keeps_signup_off():
    base = {"DJANGO_SETTINGS_MODULE": "settings.prod", "ALLOWED_HOSTS": "jobs.example.com",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64)}
    weak = _manage(["check"], **base, METRICS_TOKEN="metrics")
    assert weak.returncode != 0 and "METRICS_TOKEN is too weak" in weak.stderr
    shown = _manage(["shell", "-c", "from django.conf import settings as s; "
                     "print(s.SIGNUP_ENABLED, bool(s.METRICS_TOKEN))"],
                    **base, METRICS_TOKEN=secrets.token_urlsafe(32))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == "False True"
    on = _manage(["shell", "-c", "from django.conf import settings as s; print(s.SIGNUP_ENABLED)"],
                 **base, SIGNUP_ENABLED="true")
    assert on.stdout.strip().splitlines()[-1] == "True"


def test_a_celery_task_that_is_not_a_declared_job_is_an_error_naming_it():
    from celery import shared_task

    assert checks.check_tasks_are_jobs() == []

    @shared_task(name="reports.unrecorded")
    def unrecorded() -> None:
        """A plain Celery task: it would run with no job row."""

    try:
        problems = checks.check_tasks_are_jobs()
        assert ids(problems) == ["tasks.E007"]
        assert "'reports.unrecorded'" in problems[0].msg
    finally:
        current_app.tasks.pop("reports.unrecorded")
