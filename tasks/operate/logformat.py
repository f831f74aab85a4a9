"""Log formatting for job events: one line, with the job's id, queue and name."""

from __future__ import annotations

import logging
import logging.handlers
import os
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
    """A rotating file handler that creates its folder (a fresh clone has no ``logs/``).

    Job logs name users, addresses and errors: the folder is created 0700 and each
    file 0600, whatever the process's umask.
    """

    def __init__(self, filename: str, *args, **kwargs) -> None:
        Path(filename).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        super().__init__(filename, *args, **kwargs)

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)
