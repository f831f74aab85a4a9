"""An enqueuing process for the unique/debounce tests: ``python -m tests.reliability.window_enqueuer``.

Waits for ``--start`` (a wall-clock instant shared by all its siblings) so
that the processes add at the same moments, then adds job ``record`` on
data-processing with a ``unique_for`` or ``debounce`` window, ``--count``
times or until ``--for-s`` seconds pass, each add committed on its own.
Appends one line per add to ``--out``: the returned id, the wall-clock time
it returned, the data's ``n``.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("unique", "debounce"), required=True)
    parser.add_argument("--window-ms", type=int, required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--for-s", type=float, default=0.0)
    parser.add_argument("--name", default="proc")
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.test")
    import django

    django.setup()
    from tasks.queues import QueueName, add_job

    time.sleep(max(0.0, args.start - time.time()))
    ends = time.time() + args.for_s
    with open(args.out, "a", buffering=1) as out:
        n = 0
        while (args.count and n < args.count) or (args.for_s and time.time() < ends):
            if args.mode == "unique":  # the same data every time: one job per window
                job_id = add_job(QueueName.DATA_PROCESSING, "record", {"key": "same"},
                                 unique_for=args.window_ms)
            else:  # new data every time: the pending job's data is replaced
                job_id = add_job(QueueName.DATA_PROCESSING, "record",
                                 {"key": f"{args.name}-{n}"}, debounce=args.window_ms,
                                 unique_key="shared")
            out.write(f"{job_id} {time.time():.6f} {args.name}-{n}\n")
            n += 1


if __name__ == "__main__":
    main()
