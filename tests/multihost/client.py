"""Enqueues jobs on the multi-host service from the operator host.

Run as ``python -m tests.multihost.client`` with the service's
``DATABASE_URL`` and ``TEST_BROKER_URL`` in the environment (the test
process's own Django is bound to the test database, not to this service's).
Reads a JSON list of ``{"key", "sleep"}`` on stdin; prints the job ids.
"""

from __future__ import annotations

import json
import sys

import django


def main() -> None:
    django.setup()
    from tasks.queues import QueueName, add_job

    specs = json.load(sys.stdin)
    ids = [add_job(QueueName.DATA_PROCESSING, "record", spec) for spec in specs]
    json.dump(ids, sys.stdout)


if __name__ == "__main__":
    main()
