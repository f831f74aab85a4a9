"""Forms: signup (Django's user form plus a required email) and schedules in admin."""

import inspect
import json

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django_celery_beat.admin import PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from tasks.enqueue.task import get_task, job_names
from tasks.jobs.config import JobPriority, QueueName
from tasks.jobs.errors import JobInputError, UnknownJobNameError
from tasks.jobs.routing import split_task_name
from tasks.jobs.spec import encode_data


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True)

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class ScheduleForm(PeriodicTaskForm):
    """django-celery-beat's schedule form, limited to what the service honours.

    The job is chosen from the declared jobs (each listed with the arguments
    it takes); its kwargs are checked against the processor when saved, not
    at the first failing firing; priority is 1–5; the queue is the job's own
    (not offered), and solar schedules are refused (their firing time is not
    the same on two beats, so exactly-once cannot hold).
    """

    regtask = forms.ChoiceField(label="Job", required=False, choices=lambda: _job_choices(),
                                help_text="Every declared job, as queue · name — its arguments.")
    priority = forms.TypedChoiceField(
        label="Priority", required=False, coerce=int, empty_value=None,
        choices=[("", "the job's default: 3 (NORMAL)"),
                 *((p.value, f"{p.value} ({p.name})") for p in JobPriority)],
        help_text="1 (CRITICAL) runs first … 5 (BACKGROUND) last.")

    class Meta(PeriodicTaskForm.Meta):
        model = PeriodicTask
        exclude = ()

    def clean(self) -> dict:
        data = super().clean()
        task = self._job(data.get("task"))
        if task is None:
            return data
        for field in ("queue", "exchange", "routing_key"):
            if data.get(field) and data[field] != task.queue_name.value:
                self.add_error(field, f"{task.name} runs on queue {task.queue_name.value}; "
                                      "leave this empty")
        if data.get("solar"):
            self.add_error("solar", "solar schedules are not supported (two beats would not "
                                    "agree on the firing time): use a crontab or an interval")
        if json.loads(data.get("headers") or "{}"):
            self.add_error("headers", "headers are not carried by job records; leave {}")
        try:
            args = json.loads(data.get("args") or "[]")
            kwargs = json.loads(data.get("kwargs") or "{}")
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise JobInputError("args must be a JSON list and kwargs a JSON object")
            encode_data(task.bind_data(args, kwargs))
        except ValueError as exc:  # JobInputError or bad JSON
            self.add_error("kwargs", str(exc))
        return data

    def _job(self, name: str | None):
        parsed = split_task_name(name or "")
        try:
            if parsed is None:
                raise UnknownJobNameError("?", name, [])
            return get_task(*parsed)
        except UnknownJobNameError:
            self.add_error("task", f"{name!r} is not a declared job: choose one from the list")
            return None


def _job_choices() -> list[tuple[str, str]]:
    choices = [("", "---------")]
    for queue in QueueName:
        for name in job_names(queue):
            task = get_task(queue, name)
            choices.append((task.name, f"{queue.value} · {name} — {_arguments(task)}"))
    return choices


def _arguments(task) -> str:
    """``user_id, message, webhook_url=None`` for a processor ``fn(job, user_id, message, …)``."""
    params = list(inspect.signature(task.run).parameters.values())[1:]
    if not params:
        return "takes no arguments"
    return ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                     for p in params)
