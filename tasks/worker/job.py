"""The ``job`` object a processor receives: progress, logs, cancellation."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from tasks.worker import lifecycle


@dataclass
class JobContext:
    """Handle on the running job, passed as the processor's first argument.

    ``attached`` is False when a processor is called directly as a plain
    function (unit tests); progress and logs are then kept in memory only.
    """

    id: str
    queue: str
    name: str
    data: dict
    attempts_made: int = 1
    max_attempts: int = 1
    attached: bool = True
    progress: Any = 0
    lines: list[str] = field(default_factory=list)

    def update_progress(self, progress: Any) -> None:
        """A number 0–100, or any JSON object (e.g. ``{"rows": 1000}``)."""
        if isinstance(progress, numbers.Real) and not isinstance(progress, bool):
            if not 0 <= progress <= 100:
                raise ValueError(f"progress {progress!r} is outside 0..100")
        self.progress = progress
        if self.attached:
            lifecycle.set_progress(self.id, progress)

    def log(self, message: str) -> None:
        self.lines.append(str(message))
        if self.attached:
            lifecycle.append_log(self.id, str(message))

    def children_values(self) -> dict[str, Any]:
        """A flow parent's completed children: ``{child id: its result}``."""
        from tasks.models import Job

        return dict(Job.objects.children_of(self.id).filter(state="completed")
                    .values_list("pk", "result"))

    def children_failures(self) -> dict[str, str]:
        """Children that did not complete but let the parent run (``on_failure: ignore``)."""
        from tasks.models import Job

        rows = Job.objects.children_of(self.id).filter(
            state__in=("failed", "cancelled"))
        return {pk: (errors[-1]["error"] if errors else state)
                for pk, state, errors in rows.values_list("pk", "state", "errors")}

    def is_cancelled(self) -> bool:
        """True once an operator asked to cancel this job; check it between chunks."""
        return self.attached and lifecycle.cancel_requested(self.id)

