"""Data-processing queue: summarise an uploaded CSV in chunks, with progress and cancel."""

from __future__ import annotations

import logging

from tasks.jobs.config import QueueName
from tasks.jobs.errors import JobCancelled
from tasks.models import Dataset
from tasks.services.datasets import chunks, read_rows, summarise_chunk
from tasks.worker.job import JobContext
from tasks.worker.registry import processor

logger = logging.getLogger("tasks.processors.data")


@processor(QueueName.DATA_PROCESSING, "process-data")
def process_data(job: JobContext, userId: str | int | None, dataId: str | int,  # noqa: N803
                 chunk_size: int = 500) -> dict:
    """The job carries ids (``{"userId", "dataId"}``), never the file itself."""
    dataset = Dataset.objects.filter(pk=dataId).first()
    if dataset is None:
        logger.info("dataset %s vanished; nothing to process", dataId)
        return {"processed": False, "reason": "no such dataset"}
    columns, rows = read_rows(dataset.content)
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.PROCESSING)
    summary: dict = {"columns_seen": columns}
    done = 0
    for chunk in chunks(rows, max(int(chunk_size), 1)):
        if job.is_cancelled():
            Dataset.objects.filter(pk=dataset.pk).update(
                status=Dataset.Status.CANCELLED, rows_processed=done, summary=summary
            )
            job.log(f"cancelled after {done} of {len(rows)} rows")
            raise JobCancelled(job.id)
        summarise_chunk(chunk, summary)
        done += len(chunk)
        job.update_progress(int(done * 100 / len(rows)))
        Dataset.objects.filter(pk=dataset.pk).update(rows_processed=done)
    job.update_progress(100)
    Dataset.objects.filter(pk=dataset.pk).update(
        status=Dataset.Status.PROCESSED, rows_processed=done, summary=summary
    )
    job.log(f"processed {done} rows for user {userId}")
    return {"processed": True, "rows": done}
