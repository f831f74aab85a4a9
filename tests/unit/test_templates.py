"""Fast path ``message-templates``: a templated message is what Celery itself would send."""

from __future__ import annotations

import random
import string

import pytest
from celery import current_app
from celery.app.amqp import AMQP
from celery.utils.saferepr import saferepr

from tasks.fastpath import templates
from tasks.fastpath.registry import Fastpaths
from tasks.fastpath.sender import FastSender
from tasks.jobs.routing import broker_priority
from tasks.processors.email import send_welcome_email

EMAIL = {"to": "a@example.com", "subject": "s", "body": "b"}


def _paths() -> Fastpaths:
    """The fast paths as this test needs them, whatever JOB_FASTPATH says for the run."""
    paths = Fastpaths(frozenset({templates.PATH.name}))
    assert paths.settle(templates.PATH)
    return paths


def test_given_jobs_when_built_from_a_template_then_each_equals_celerys_own_message():
    connection = current_app.connection_for_write()
    producer = templates.Recorder(connection)
    sender = FastSender(current_app, producer, batched=False, paths=_paths(), shared={})
    jobs = [("job-1", EMAIL, 3), ("job-2", {**EMAIL, "to": "b@x.org"}, 1),
            ("job-3", {**EMAIL, "body": "it's \"quoted\"\n" + "x" * 2000}, 5)]
    for job_id, data, priority in jobs:
        sender.send(job_id, send_welcome_email.name, "email", data, priority)
        native = broker_priority(priority, connection)  # Redis 0 first, AMQP 5
        body, options = templates.celerys_message(current_app, connection, send_welcome_email,
                                                  job_id, data, "email", native)
        our_body, our_options = producer.published
        assert [e.name for e in our_options.pop("declare")] == [
            e.name for e in options.pop("declare")]
        assert (our_body, our_options) == (body, options)


def test_kwargs_repr_equals_celerys_saferepr_for_plain_and_other_data():
    rng = random.Random(7)
    plain = "".join(c for c in string.printable if c.isprintable() and c not in "'\"\\")
    every = plain + "'\"\\\n\t\x00éü😀\u2028"
    for alphabet in (plain, every):
        for _ in range(3000):
            data = {}
            for _ in range(rng.randint(0, 9)):
                key = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
                data[key] = rng.choice([
                    None, True, False, rng.randint(-10**25, 10**25), rng.random() * 1e30,
                    float("inf"), "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 150))),
                    {"nested": [1, {"deeper": {"deepest": 1}}]},
                ])
            assert templates.kwargs_repr(data, 3) == saferepr(data, 1024, maxlevels=3), data


def test_a_template_is_verified_against_celery_and_a_changed_one_is_not():
    with current_app.connection_for_write() as connection:
        template = templates.record(current_app, connection, send_welcome_email, "email", False)
        assert templates.verify(current_app, connection, send_welcome_email, "email",
                                template) is None
        wrong = templates.Template(template.body_tail, template.options, template.declare,
                                   maxlevels=1)  # Celery reprs three levels deep
        problem = templates.verify(current_app, connection, send_welcome_email, "email", wrong)
    assert problem and "kwargsrepr" in problem


def test_a_celery_with_another_repr_limit_turns_the_fast_path_off(monkeypatch, caplog):
    monkeypatch.setattr(AMQP, "kwargsrepr_maxsize", 512)
    paths = Fastpaths(frozenset({templates.PATH.name}))

    assert not paths.settle(templates.PATH)

    assert paths.fallbacks() == {templates.PATH.name: "Celery's kwargsrepr_maxsize is 512, not 1024"}
    assert "fast path message-templates is off" in caplog.text


@pytest.mark.parametrize("setting, expected", [
    ("on", {"redis-clients", "message-templates"}), ("off", set()),
    ("redis-clients", {"redis-clients"}), (" Message-Templates , ", {"message-templates"}),
])
def test_job_fastpath_chooses_which_may_run(setting, expected):
    from tasks.fastpath.registry import wanted_from

    assert wanted_from(setting, ["redis-clients", "message-templates"]) == expected


def test_job_fastpath_refuses_an_unknown_name():
    from tasks.fastpath.registry import wanted_from

    with pytest.raises(ValueError, match="unknown fast paths \\['redis-klients'\\]"):
        wanted_from("redis-klients", ["redis-clients"])
