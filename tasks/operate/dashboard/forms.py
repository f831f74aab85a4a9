"""Listing filters and the clean form."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from tasks.jobs.config import JobPriority
from tasks.jobs.limits import MAX_CLEAN_AGE
from tasks.jobs.states import CLEANABLE_SINCE
from tasks.operate.dashboard.queries import JobFilter

DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
AGE_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}


class JobFilterForm(forms.Form):
    name = forms.ChoiceField(required=False)
    priority = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None,
        choices=[("", "any")] + [(p.value, f"{p.value} {p.name.lower()}") for p in JobPriority],
    )
    created_from = forms.DateTimeField(required=False, widget=DATETIME_INPUT, label="created from")
    created_to = forms.DateTimeField(required=False, widget=DATETIME_INPUT, label="to")
    q = forms.CharField(required=False, max_length=200, label="search id or data")

    def __init__(self, *args, names: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].choices = [("", "any")] + [(n, n) for n in names]

    def to_filter(self) -> JobFilter:
        if not self.is_valid():
            return JobFilter()
        data = self.cleaned_data
        return JobFilter(name=data["name"] or "", priority=data["priority"],
                         created_from=data["created_from"], created_to=data["created_to"],
                         search=(data["q"] or "").strip())


class CleanForm(forms.Form):
    """Delete jobs of one state older than an age (finished time, or creation for unfinished)."""

    state = forms.ChoiceField(choices=[(s.value, s.value) for s in CLEANABLE_SINCE])
    age = forms.IntegerField(min_value=0, initial=24, label="older than")
    unit = forms.ChoiceField(choices=[(u, u) for u in AGE_UNITS], initial="hours")

    def clean(self) -> dict:
        data = super().clean()
        if "age" in data and data.get("unit") in AGE_UNITS:
            if data["age"] * AGE_UNITS[data["unit"]] > MAX_CLEAN_AGE.total_seconds():
                self.add_error("age", f"at most {MAX_CLEAN_AGE.days} days")
        return data

    def grace(self) -> timedelta:
        return timedelta(seconds=self.cleaned_data["age"] * AGE_UNITS[self.cleaned_data["unit"]])
