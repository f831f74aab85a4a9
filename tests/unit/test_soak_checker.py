"""The soak checker's one allowance: a job failed by the chaos's database faults in its own code."""

from __future__ import annotations

from tests.reliability.soak.checker import failed_by_injected_faults

IN_JOB = ('File "/x/tests/testapp/soak_processors.py", line 39, in run_plan\n'
          "    Execution.objects.create(...)\n")
IN_SERVICE = 'File "/x/tasks/worker/lifecycle.py", line 120, in complete\n'


def _fault(trace: str = IN_JOB) -> dict:
    return {"exception": "django.db.utils.OperationalError", "traceback": trace,
            "error": "OperationalError: terminating connection due to administrator command"}


def _planned(attempt: int) -> dict:
    return {"exception": "tasks.jobs.errors.TransientJobError", "traceback": IN_JOB,
            "error": f"TransientJobError: planned flaky failure on attempt {attempt}"}


def test_a_flaky_job_whose_last_attempt_hit_a_terminated_session_is_accounted_for():
    assert failed_by_injected_faults("flaky", [_planned(1), _planned(2), _fault()])
    assert failed_by_injected_faults("ok", [_fault(), _fault(), _fault()])


def test_a_fault_the_service_raised_or_any_other_error_still_counts_as_unexpected():
    assert not failed_by_injected_faults("flaky", [_planned(1), _planned(2), _fault(IN_SERVICE)])
    assert not failed_by_injected_faults("ok", [_planned(1), _fault(), _fault()])  # ok never plans one
    assert not failed_by_injected_faults("flaky", [_planned(1), _planned(2), _planned(3)])
    assert not failed_by_injected_faults("fail", [_fault(), _fault(), _fault()])
    assert not failed_by_injected_faults("ok", [])
    other = {"exception": "builtins.KeyError", "traceback": IN_JOB, "error": "KeyError: 'x'"}
    assert not failed_by_injected_faults("ok", [_fault(), _fault(), other])
