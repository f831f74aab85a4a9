"""Diagnostics: with ``BENCH_PROFILE_DIR`` set, each worker pool process runs under
cProfile and writes ``<dir>/<app>-<pid>.prof`` when it exits (``bench/suite.py --env
BENCH_PROFILE_DIR=DIR``).
"""

from __future__ import annotations

import os


def install(app_name: str) -> None:
    directory = os.environ.get("BENCH_PROFILE_DIR")
    if not directory:
        return
    import cProfile

    from celery.signals import worker_process_init, worker_process_shutdown

    state: dict = {}

    @worker_process_init.connect(weak=False)
    def start(**_: object) -> None:
        state["profile"] = cProfile.Profile()
        state["profile"].enable()

    @worker_process_shutdown.connect(weak=False)
    def stop(**_: object) -> None:
        profile = state.pop("profile", None)
        if profile is not None:
            profile.disable()
            profile.dump_stats(os.path.join(directory, f"{app_name}-{os.getpid()}.prof"))
