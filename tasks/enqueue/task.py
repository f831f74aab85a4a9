"""The enqueue half of every processor's Celery task, and finding processors by name.

``task.delay()`` / ``apply_async`` of a processor records a job like
``add_job`` does: validate, write the row in the caller's transaction,
publish after commit. Celery's ``countdown``/``eta`` become a delayed row for
the promoter, never a broker ETA (which Redis re-delivers after the
visibility timeout). The worker half (running a job) is
``tasks.worker.task.JobTask``, a subclass.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar

from celery import current_app
from celery.contrib.django.task import DjangoTask
from django.utils import timezone

from tasks.enqueue.options import job_options
from tasks.enqueue.records import enqueue
from tasks.jobs.config import QueueName
from tasks.jobs.errors import InvalidArgumentsError, InvalidDelayError, UnknownJobNameError
from tasks.jobs.limits import MAX_DELAY_S
from tasks.jobs.routing import task_name
from tasks.jobs.spec import build_spec


class RecordingTask(DjangoTask):
    """A Celery task whose calls record a job; the base of ``JobTask``."""

    abstract = True
    typing = False
    queue_name: ClassVar[QueueName]
    job_name: ClassVar[str]
    #: ``@processor(batch=N)``: up to N jobs per broker message (``tasks.worker.batch``); 0: one.
    batch_size: ClassVar[int] = 0
    #: The processor's own check of its data (``@processor(check_data=…)``).
    data_check: ClassVar[Callable[[dict], None] | None] = None

    def check_data(self, data: dict) -> None:
        """Raise the processor's ``JobInputError`` for data it refuses; nothing otherwise."""
        check = type(self).data_check
        if check is not None:
            check(data)

    def bind_data(self, args: Any = None, kwargs: Any = None) -> dict:
        """Turn call arguments into the job's data (keyword arguments by name)."""
        args = tuple(args or ())
        kwargs = dict(kwargs or {})
        signature = inspect.signature(self.run)
        params = list(signature.parameters.values())[1:]  # drop the ``job`` parameter
        try:
            bound = signature.replace(parameters=params).bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgumentsError(self.name, str(exc)) from None
        data = {}
        for name, value in bound.arguments.items():
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                data.update(value)
            elif signature.parameters[name].kind is inspect.Parameter.VAR_POSITIONAL:
                raise InvalidArgumentsError(self.name, "*args are not supported; name them")
            else:
                data[name] = value
        return data

    def check_arguments(self, data: dict) -> None:
        """Raise ``InvalidArgumentsError`` unless the processor takes ``data`` as keywords.

        The processor's parameters are worked out once (``inspect.signature``
        per call measured ~20 µs); only data that does not fit is bound in full,
        for the precise message.
        """
        if not _fits(self.run, data.keys()):
            self.bind_data(kwargs=data)

    def apply_async(self, args=None, kwargs=None, task_id=None, producer=None, link=None,
                    link_error=None, shadow=None, **options):
        """Record the job and publish it after commit; return an ``AsyncResult`` of its id.

        Job options: ``priority`` (1..5), ``delay`` (ms or timedelta; also Celery's
        ``countdown`` in seconds, ``eta``), ``attempts``, ``backoff``, ``timeout``
        and ``soft_timeout`` (ms or timedelta; also Celery's ``time_limit`` and
        ``soft_time_limit`` in seconds), ``lifo``, ``unique_for``/``debounce``
        with ``unique_key`` (as ``add_job``); ``task_id``
        is the job id (an existing one adds nothing). Celery's canvas options and
        ``expires`` are kept on the row (``tasks.enqueue.options``); an option
        the service cannot honour raises ``UnsupportedOptionError`` naming it.
        """
        data = self.bind_data(args, kwargs)
        spec = build_spec(self.queue_name, self.job_name, data, delay=_delay_from(options),
                          job_id=task_id, task_time_limit_s=self.time_limit,
                          **job_options(self, options, link, link_error, shadow))
        return self.AsyncResult(enqueue(spec))


@lru_cache(maxsize=1024)
def _parameters(run: Any) -> tuple[frozenset[str], frozenset[str], bool] | None:
    """(accepted names, required names, takes ``**kwargs``) of a processor; None if unusual.

    ``inspect.signature`` and ``bind`` per job measured ~20 µs; processors do
    not change, so this is worked out once per processor.
    """
    params = list(inspect.signature(run).parameters.values())[1:]  # drop ``job``
    names, required, var_keyword = set(), set(), False
    for param in params:
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        elif param.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.add(param.name)
            if param.default is inspect.Parameter.empty:
                required.add(param.name)
        else:  # positional-only or *args: let ``bind_data`` judge every call
            return None
    return frozenset(names), frozenset(required), var_keyword


def _fits(run: Any, keys: Any) -> bool:
    """True when ``bind_data`` would accept these keyword arguments as they are."""
    parameters = _parameters(run)
    if parameters is None:
        return False
    names, required, var_keyword = parameters
    return required <= keys and (var_keyword or keys <= names)


def _delay_from(options: dict) -> Any:
    """The job's delay: ``delay`` (ms or timedelta), or Celery's ``countdown`` (seconds) / ``eta``."""
    if options.get("delay") is not None:
        return options["delay"]
    countdown = options.get("countdown")
    if countdown is not None:
        if isinstance(countdown, bool) or not isinstance(countdown, (int, float)) \
                or not math.isfinite(countdown) or not 0 <= countdown <= MAX_DELAY_S:
            raise InvalidDelayError(countdown)
        return timedelta(seconds=countdown)
    eta = options.get("eta")
    if eta is None:
        return None
    if not isinstance(eta, datetime) or timezone.is_naive(eta):  # naive: no instant to wait for
        raise InvalidDelayError(eta)
    return max(eta - timezone.now(), timedelta(0))


def job_names(queue: QueueName) -> list[str]:
    """The job names registered on ``queue``."""
    prefix = task_name(queue, "")
    return sorted(task.job_name for name, task in current_app.tasks.items()
                  if name.startswith(prefix) and isinstance(task, RecordingTask))


def get_task(queue: QueueName, name: Any) -> RecordingTask:
    """The task behind job ``name`` on ``queue``; ``UnknownJobNameError`` otherwise."""
    task = current_app.tasks.get(task_name(queue, name)) if isinstance(name, str) else None
    if not isinstance(task, RecordingTask):
        raise UnknownJobNameError(queue.value, name, job_names(queue))
    return task
