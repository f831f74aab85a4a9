"""Log formatting for job events: one line, with the job's id, queue and name."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

JOB_FIELDS = ("job_id", "queue", "job_name")


class JobEventFormatter(logging.Formatter):
    """``time level logger message [job_id=… queue=… job_name=…]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{name}={getattr(record, name)}" for name in JOB_FIELDS if hasattr(record, name)]
        return f"{line} [{' '.join(fields)}]" if fields else line


class CombinedLogHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler that creates its folder (a fresh clone has no ``logs/``)."""

    def __init__(self, filename: str, *args, **kwargs) -> None:
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(filename, *args, **kwargs)
