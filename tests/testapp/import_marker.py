"""A module nothing imports: importing it leaves a ledger row, so a test can tell.

A job naming ``tests.testapp.import_marker.boom`` as its django-task must be
refused without this module being imported (importing runs module code).
"""

from tests.testapp.models import Execution

Execution.objects.create(key="import-marker-imported", job_id="import", worker_pid=0)


def boom() -> None:
    Execution.objects.create(key="import-marker-called", job_id="import", worker_pid=0)
