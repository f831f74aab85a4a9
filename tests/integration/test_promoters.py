"""Several promoters at once publish each due job exactly once (row locks, SKIP LOCKED)."""

from __future__ import annotations

import time

from tasks.models import Job
from tasks.queues import add_bulk
from tests import processes
from tests.integration.helpers import queue_length, shared_worker_paused
from tests.processes import wait_for


def test_two_extra_promoters_do_not_double_publish(service, live_broker, tmp_path):
    with shared_worker_paused("notifications"):
        extra = [processes.promoter(live_broker, tmp_path, f"promoter-{i}").start() for i in (1, 2)]
        try:
            ids = add_bulk({"queue": "notifications", "name": "send-reminder",
                            "data": {"message": f"m{i}"}, "delay": 1500} for i in range(600))
            wait_for(lambda: Job.objects.filter(pk__in=ids, state="waiting",
                                                published_at__isnull=False).count() == 600,
                     30, message="all 600 jobs promoted")
            # rows are stamped before their messages go out: wait for the broker too
            wait_for(lambda: queue_length("notifications") >= 600, 30, message="600 messages")
            time.sleep(1.5)
            assert queue_length("notifications") == 600  # one message per job, none doubled
        finally:
            for proc in extra:
                proc.stop()
        # with the shared consumer back, the messages drain and nothing runs twice
    wait_for(lambda: Job.objects.filter(pk__in=ids, state="completed").count() == 600, 60,
             message="all 600 completed")
    assert all(a == 1 for a in Job.objects.filter(pk__in=ids).values_list("attempts_made", flat=True))
