"""What the benchmark's worker apps load: task bodies, and diagnostics hooks.

The worker processes import ``bench.service_app`` / ``bench.plain_app``, and
those import only this package (never the driver: ``harness``, ``suite``,
``context``, the scenario modules). The driver imports from here, never the
reverse; ``tests/unit/test_bench_layout.py`` reads every import to keep it so.

- ``keys``: the Redis keys the job bodies write and the driver reads;
- ``probes``: the job bodies both systems run;
- ``profiling``: cProfile per pool process (``BENCH_PROFILE_DIR``);
- ``steps``: the worker-side stamps of ``bench/steps.py`` (``BENCH_STEPS_DIR``).
"""
