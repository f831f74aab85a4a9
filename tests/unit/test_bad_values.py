"""Values past every bound (issue 13, item 8): a precise JobInputError, never a crash.

Each was a 500 or a job wrecked in its failure path before the bounds of
``tasks/jobs/limits.py``: ``datetime``/``timedelta`` overflows, a 32-bit
column, a recursive encoder, an id that forges log lines or another URL.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tasks.jobs import errors
from tasks.jobs.backoff import next_delay_ms
from tasks.jobs.config import QueueName
from tasks.jobs.limits import MAX_BACKOFF_MS, MAX_DATA_DEPTH
from tasks.jobs.spec import json_depth, valid_job_id
from tasks.jobs.text import one_line, short_repr, storable
from tasks.models import Job
from tasks.processors.email import send_welcome_email
from tasks.queues import add_bulk, add_job
from tasks.upkeep import retention
from tasks.worker.task import _jsonable, failure_entry

EMAIL = {"to": "a@example.com", "subject": "s", "body": "b"}


def nested(depth: int) -> dict:
    """``{"x": [[…]]}`` with ``depth`` containers in all, built without recursion."""
    inner: list = []
    for _ in range(depth - 2):
        inner = [inner]
    return {"x": inner}


@pytest.fixture
def nothing_enqueued(db, monkeypatch):
    published = []
    monkeypatch.setattr("tasks.enqueue.records.publish_on_commit",
                        lambda messages, claimed=False: published.extend(messages))
    yield published
    assert Job.objects.count() == 0
    assert published == []


def _add(**options):
    return add_job(QueueName.EMAIL, "send-welcome-email", EMAIL, **options)


@pytest.mark.parametrize(
    "call, error, message",
    [
        # delay: finite, 0 .. one year
        (lambda: _add(delay=1e12), errors.InvalidDelayError, "delay 1000000000000.0 is invalid"),
        (lambda: _add(delay=10**400), errors.InvalidDelayError, "from 0 to 31536000000"),
        (lambda: _add(delay=float("inf")), errors.InvalidDelayError, "delay inf is invalid"),
        (lambda: _add(delay=float("nan")), errors.InvalidDelayError, "delay nan is invalid"),
        (lambda: _add(delay=365 * 86400 * 1000 + 1), errors.InvalidDelayError, "one year"),
        (lambda: _add(delay=timedelta(days=366)), errors.InvalidDelayError, "delay"),
        (lambda: _add(delay=timedelta.max), errors.InvalidDelayError, "delay"),
        (lambda: send_welcome_email.apply_async(kwargs=EMAIL, countdown=1e12),
         errors.InvalidDelayError, "delay"),
        (lambda: send_welcome_email.apply_async(kwargs=EMAIL, eta=datetime(2030, 1, 1)),
         errors.InvalidDelayError, "delay"),  # naive: no instant; was a TypeError
        # attempts: whole number 1 .. 100
        (lambda: _add(attempts=2**63), errors.InvalidAttemptsError,
         "attempts 9223372036854775808 is invalid: give a whole number from 1 to 100"),
        (lambda: _add(attempts=2**70), errors.InvalidAttemptsError, "from 1 to 100"),
        (lambda: _add(attempts=10**9), errors.InvalidAttemptsError, "attempts 1000000000"),
        (lambda: _add(attempts=101), errors.InvalidAttemptsError, "attempts 101"),
        (lambda: _add(attempts=3.0), errors.InvalidAttemptsError, "attempts 3.0"),
        # backoff: finite milliseconds, 0 .. one day
        (lambda: _add(backoff={"type": "fixed", "delay": float("inf")}),
         errors.InvalidBackoffError, "delay must be milliseconds from 0 to 86400000"),
        (lambda: _add(backoff={"type": "fixed", "delay": float("nan")}),
         errors.InvalidBackoffError, "delay must be milliseconds"),
        (lambda: _add(backoff={"type": "fixed", "delay": 10**20}),
         errors.InvalidBackoffError, "delay must be milliseconds"),
        (lambda: _add(backoff={"type": "exponential", "max_delay": 10**20}),
         errors.InvalidBackoffError, "max_delay must be milliseconds"),
        (lambda: _add(backoff={"type": "fixed", "jitter": float("nan")}),
         errors.InvalidBackoffError, "jitter must be between"),
        # job ids: 1..255 printable characters, no '/', not '.' or '..'
        (lambda: _add(job_id="bad\ud800id"), errors.InvalidJobIdError, r"job id 'bad\\ud800id'"),
        (lambda: _add(job_id="a\x00b"), errors.InvalidJobIdError, r"job id 'a\\x00b' is invalid"),
        (lambda: _add(job_id="a\nINFO forged line"), errors.InvalidJobIdError, "printable"),
        (lambda: _add(job_id="a\rb"), errors.InvalidJobIdError, "printable"),
        (lambda: _add(job_id="a\x1b[31mred"), errors.InvalidJobIdError, "printable"),
        (lambda: _add(job_id="a\tb"), errors.InvalidJobIdError, "printable"),
        (lambda: _add(job_id="evil\u202etxt.exe"), errors.InvalidJobIdError, "printable"),
        (lambda: _add(job_id="a/status.json"), errors.InvalidJobIdError, "without '/'"),
        (lambda: _add(job_id=".."), errors.InvalidJobIdError, "not '.' or '..'"),
        (lambda: _add(job_id="x" * 256), errors.InvalidJobIdError, "1 to 255"),
        (lambda: _add(job_id=42), errors.InvalidJobIdError, "job id 42"),
        (lambda: send_welcome_email.apply_async(kwargs=EMAIL, task_id="x\ny"),
         errors.InvalidJobIdError, "printable"),
        # data: nesting bounded, deep or not
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", {**EMAIL, "body": nested(100_000)}),
         errors.PayloadTooDeepError, f"deeper than {MAX_DATA_DEPTH} levels"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email",
                         {**EMAIL, "body": nested(MAX_DATA_DEPTH)}),
         errors.PayloadTooDeepError, "deeper than"),
        (lambda: add_bulk([{"queue": "email", "name": "send-welcome-email",
                            "data": {**EMAIL, "body": nested(5_000)}}]),
         errors.PayloadTooDeepError, "deeper than"),
        (lambda: add_job(QueueName.EMAIL, "send-welcome-email", {**EMAIL, "body": 10**5000}),
         errors.PayloadNotJSONError, "not JSON-serialisable"),
    ],
)
def test_bad_value_is_refused_at_the_call_site(nothing_enqueued, call, error, message):
    with pytest.raises(error, match=message) as caught:
        call()
    assert isinstance(caught.value, errors.JobInputError)
    assert len(str(caught.value)) < 400, "the error names the value, bounded"


def test_values_at_the_bounds_are_accepted(db, monkeypatch):
    monkeypatch.setattr("tasks.enqueue.records.publish_on_commit", lambda *a, **k: None)
    job_id = _add(delay=365 * 86400 * 1000, attempts=100, job_id="a" * 255,
                  backoff={"type": "fixed", "delay": MAX_BACKOFF_MS, "max_delay": MAX_BACKOFF_MS})
    job = Job.objects.get(pk=job_id)
    assert (job.max_attempts, job.delay_ms, job.backoff["delay"]) == (100, 365 * 86400 * 1000,
                                                                     MAX_BACKOFF_MS)
    at_limit = add_job(QueueName.EMAIL, "send-welcome-email",
                       {**EMAIL, "body": nested(MAX_DATA_DEPTH - 1)})  # + the data object itself
    assert Job.objects.get(pk=at_limit).data["body"] == nested(MAX_DATA_DEPTH - 1)
    for good in ("report-2026-11-28", "cron:daily cleanup:2026-01-01T02:00:00Z", "émoji-🙂", "a.b"):
        assert valid_job_id(good), good


def test_depth_is_measured_without_recursion_and_stops_early():
    assert json_depth(nested(MAX_DATA_DEPTH)) == MAX_DATA_DEPTH
    assert json_depth(nested(200_000)) == MAX_DATA_DEPTH + 1
    assert json_depth({"a": 1, "b": [1, {"c": []}]}) == 4 and json_depth(7) == 0


@pytest.mark.parametrize("age", [10**12, 10**30, float("inf"), float("nan"), -1,
                                 timedelta(days=3651), timedelta.max, "24h", None])
def test_clean_age_is_bounded(db, age):
    with pytest.raises(errors.InvalidCleanAgeError, match="from 0 to 3650 days"):
        retention.clean(QueueName.EMAIL, age, "completed")


def test_clean_of_an_uncleanable_state_is_a_job_input_error(db):
    with pytest.raises(errors.InvalidCleanStateError, match="state 'active' cannot be cleaned"):
        retention.clean(QueueName.EMAIL, 0, "active")


# -- the failure path never overflows on stored values -------------------------------


@pytest.mark.parametrize(
    "backoff",
    [{"type": "fixed", "delay": 10**20}, {"type": "exponential", "delay": 10**20,
                                           "max_delay": 10**20},
     {"type": "fixed", "delay": 1e300}],
)
def test_a_stored_backoff_beyond_the_bound_is_clamped_to_a_day(backoff):
    delay = next_delay_ms(backoff, 1)
    assert delay == MAX_BACKOFF_MS
    assert timedelta(milliseconds=delay) == timedelta(days=1)


@pytest.mark.parametrize(
    "backoff, custom, message",
    [
        ({"type": "fixed", "delay": float("inf")}, None, "delay must be milliseconds"),
        ({"type": "fixed", "delay": float("nan")}, None, "delay must be milliseconds"),
        ({"type": "fixed", "delay": "soon"}, None, "delay must be milliseconds"),
        ({"type": "fixed", "jitter": "x"}, None, "jitter"),
        ({"type": "custom"}, lambda n: float("nan"), "custom strategy returned nan"),
        ({"type": "custom"}, lambda n: float("inf"), "custom strategy returned inf"),
        ({"type": "custom"}, lambda n: "later", "custom strategy returned 'later'"),
    ],
)
def test_a_stored_backoff_that_is_not_a_number_is_a_clear_error(backoff, custom, message):
    with pytest.raises(errors.InvalidBackoffError, match=message):
        next_delay_ms(backoff, 1, custom)


def test_a_custom_strategy_asking_for_years_gets_a_day():
    assert next_delay_ms({"type": "custom"}, 1, lambda n: 10**30) == MAX_BACKOFF_MS


def test_failure_entries_hold_text_every_database_accepts():
    started = datetime(2026, 1, 1)
    entry = failure_entry(1, ValueError("bad \x00 \ud800 " + "x" * 20_000), "tb \x00", started,
                          started)
    json.dumps(entry, ensure_ascii=False).encode("utf-8")  # no lone surrogate left
    assert "\x00" not in entry["error"] and "\\x00" in entry["error"]
    assert "\\ud800" in entry["error"] and len(entry["error"]) <= 10_000
    assert entry["error"].endswith("…(truncated)") and entry["traceback"] == "tb \\x00"


@pytest.mark.parametrize("result", [nested(5_000), {"nul": "a\x00b"}, {"s": "\udc00"},
                                    float("nan"), object()])
def test_a_result_the_database_would_refuse_is_stored_as_a_bounded_repr(result):
    stored = _jsonable(result)
    assert set(stored) == {"repr"} and len(stored["repr"]) < 200
    json.dumps(stored, ensure_ascii=False).encode("utf-8")


def test_a_plain_result_is_stored_as_it_is():
    value = {"a": [1, 2.5, "é🙂"], "b": None}
    assert _jsonable(value) is value


def test_text_helpers_never_raise():
    assert short_repr(nested(100_000)).startswith("{'x': [[")
    assert one_line("a\nb\x00c\ud800") == "a\\nb\\x00c\\ud800"
    assert storable("ok", 10) == "ok"


@pytest.mark.parametrize("name", ["daily cleanup", "a/b", "a%2Fb", "line\nbreak", "x" * 200,
                                  "sur\ud800rogate", "."])
def test_every_schedule_name_gives_a_valid_and_distinct_firing_id(name):
    from tasks.upkeep.scheduler import firing_job_id

    at = datetime(2026, 3, 29, 1, 30)
    job_id = firing_job_id(name, at)
    assert valid_job_id(job_id), job_id
    assert job_id.endswith(":2026-03-29T01:30:00Z")
    assert len({firing_job_id(n, at) for n in ("a/b", "a%2Fb", "a_b")}) == 3
    if valid_job_id(name) and "%" not in name and len(name) < 200:
        assert job_id == f"cron:{name}:2026-03-29T01:30:00Z"  # ordinary names unchanged


@pytest.mark.parametrize("text", ["99999999999999d", "10000000h", "3651d", "١٠d", "1" * 5000 + "s"])
def test_the_queues_command_refuses_an_age_past_the_bound(text):
    from django.core.management.base import CommandError

    from tasks.management.commands.queues import parse_age

    with pytest.raises(CommandError, match="age"):
        parse_age(text)
