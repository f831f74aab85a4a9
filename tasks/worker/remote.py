"""The worker's own remote-control command: stop the process running a job, batched or not.

Celery's ``revoke(id, terminate=True)`` finds the request whose task id is the
job's id. A job that came in a batch (``tasks.worker.batch``) runs under its
batch's request, so the reconciler's forced cancellation
(``tasks.upkeep.reconciler.enforce_cancellations``) asks every worker with
``terminate_job`` instead: the request running the job (its own, or the
batch carrying it) is terminated; the batch's other unfinished jobs are
re-queued by the orphan sweep, as after any lost process. Registered with
Celery's documented ``control_command`` (imported by ``tasks.worker.bootstep``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.platforms import signals as platform_signals
from celery.worker import state as worker_state
from celery.worker.control import control_command

from tasks.jobs.routing import BATCH_SUFFIX

logger = logging.getLogger("tasks.worker.remote")


def job_ids_of(request: Any) -> list[str]:
    """The jobs a worker request runs: its own id, or the ids a batch carries."""
    if not request.name.endswith(BATCH_SUFFIX):
        return [request.id]
    ids = (request.kwargs or {}).get("ids")
    return ids if isinstance(ids, list) else []


def holds(request: Any, job_id: str) -> bool:
    """True when ``request`` runs ``job_id``: its own, or a batch that carries it."""
    return job_id in job_ids_of(request)


@control_command(args=[("job_id", str), ("signal", str)], signature="<job_id> [signal]")
def terminate_job(state: Any, job_id: str, signal: str = "SIGTERM", **kwargs: Any) -> dict:
    """Terminate the pool process running ``job_id`` here, if one does."""
    signum = platform_signals.signum(signal)
    for request in list(worker_state.active_requests):
        if holds(request, job_id):
            logger.warning("terminating %s (%s), which runs job %s", request.id, signal, job_id)
            request.terminate(state.consumer.pool, signal=signum)
            return {"ok": f"terminated {request.id}"}
    return {"ok": "not running here"}
