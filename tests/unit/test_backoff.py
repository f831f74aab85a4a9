import random

import pytest

from tasks.jobs.backoff import exponential_ms, next_delay_ms, parse_backoff, with_jitter
from tasks.jobs.config import Backoff
from tasks.jobs.errors import InvalidBackoffError


def test_exponential_doubles_from_the_base_and_is_capped():
    assert [exponential_ms(n, 2000, 60_000) for n in (1, 2, 3, 4)] == [2000, 4000, 8000, 16000]
    assert exponential_ms(10, 2000, 60_000) == 60_000


def test_fixed_waits_the_same_every_time():
    backoff = {"type": "fixed", "delay": 5000}
    assert {next_delay_ms(backoff, n) for n in (1, 2, 3)} == {5000}


def test_custom_asks_the_task_strategy_with_attempts_made():
    assert next_delay_ms({"type": "custom"}, 3, custom=lambda n: n * 1000) == 3000


def test_custom_without_a_strategy_is_refused():
    with pytest.raises(InvalidBackoffError, match="no custom strategy"):
        next_delay_ms({"type": "custom"}, 1)


def test_jitter_stays_within_the_band():
    rng = random.Random(7)
    delays = [with_jitter(1000, 0.5, rng) for _ in range(200)]
    assert min(delays) >= 500 and max(delays) <= 1000
    assert len(set(delays)) > 10


@pytest.mark.parametrize(
    "value, message",
    [
        ({"type": "linear"}, "type must be one of"),
        ({"type": "fixed", "delay": -1}, "delay must be milliseconds"),
        ({"type": "fixed", "delay": "soon"}, "delay must be milliseconds"),
        ({"type": "fixed", "jitter": 2}, "jitter must be between"),
        ({"type": "fixed", "colour": "red"}, "unknown keys"),
        ("exponential", "give a dict"),
    ],
)
def test_bad_backoff_names_the_problem(value, message):
    with pytest.raises(InvalidBackoffError, match=message):
        parse_backoff(value, Backoff())


def test_default_backoff_is_the_queue_preset():
    assert parse_backoff(None, Backoff()) == {
        "type": "exponential", "delay": 2000, "max_delay": 3_600_000, "jitter": 0.0
    }
