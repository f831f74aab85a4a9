"""A separate enqueuing process for fault tests: ``python -m tests.reliability.enqueuer``.

Adds jobs one at a time (each committed on its own) and appends each
returned id to ``--out`` after ``add_job`` returns, i.e. once committed.
``--die-after-commit`` kills itself with SIGKILL right after the first
commit, before the message is published.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--key", default="enq")
    parser.add_argument("--out", required=True)
    parser.add_argument("--die-after-commit", action="store_true")
    args = parser.parse_args()
    stacks = open(args.out + ".stacks", "w")  # noqa: SIM115 (open for the process's life)
    faulthandler.register(signal.SIGUSR1, file=stacks)  # a test that sees us stall asks where

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.test")
    import django

    django.setup()
    from django.db import transaction

    from tasks.queues import QueueName, add_job

    with open(args.out, "a", buffering=1) as out:
        for i in range(args.count):
            started = time.monotonic()
            if args.die_after_commit:
                with transaction.atomic():
                    # on_commit callbacks run in order: this one runs before the publish.
                    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
                    job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": f"{args.key}{i}"})
                    out.write(f"{job_id} 0\n")
                continue
            job_id = add_job(QueueName.ANALYTICS, "record-analytics", {"key": f"{args.key}{i}"})
            out.write(f"{job_id} {time.monotonic() - started:.4f}\n")


if __name__ == "__main__":
    main()
