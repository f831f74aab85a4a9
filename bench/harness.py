"""What every scenario needs: worker processes, queue depth, waits, statistics.

No Django import here: the suite's parent process uses it before any
database is chosen.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SYSTEMS = ("service", "plain")
#: Measured beside them when available (``bench/bullmq.py``; the suite decides).
EXTRA_SYSTEMS = ("bullmq",)
#: Broker queue each system's bench tasks go to.
QUEUES = {"service": "analytics", "plain": "plain"}
#: Celery app module each system's worker loads.
APPS = {"service": "bench.service_app", "plain": "bench.plain_app"}
#: Redis (kombu) priority lists: the base list is step 0, then ``<queue>:<step>``.
PRIORITY_STEPS = 5


class Worker:
    """One ``celery worker`` subprocess in its own process group, logging to a file."""

    def __init__(
        self,
        system: str,
        env: dict[str, str],
        log_path: Path,
        *,
        pool: str = "prefork",
        concurrency: int = 2,
    ) -> None:
        self.system = system
        self.args = [
            sys.executable, "-m", "celery", "-A", APPS[system], "worker",
            "-Q", QUEUES[system], "-n", f"bench-{system}-{os.getpid()}@%h",
            "-c", str(concurrency), "-P", pool,
            "--without-mingle", "--without-gossip", "-l", "WARNING",
        ]  # fmt: skip
        if system == "plain":
            # No Django at all: with DJANGO_SETTINGS_MODULE set, Celery's Django fixup
            # would load Django in the plain worker and close connections around every task.
            env = {
                k: v for k, v in env.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")
            }
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self, what: str = "") -> None:
        if not self.alive():
            code = self.process.returncode if self.process else None
            raise RuntimeError(f"{self.system} worker exited ({code}) {what}\n{self.log_tail()}")

    def rss_bytes(self) -> int:
        """Resident memory of the worker's main process plus its pool children."""
        import psutil

        try:
            main = psutil.Process(self.process.pid)
            procs = [main, *main.children(recursive=True)]
        except (psutil.NoSuchProcess, AttributeError):
            return 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU of the main process and its pool children so far."""
        import psutil

        try:
            main = psutil.Process(self.process.pid)
            procs = [main, *main.children(recursive=True)]
        except (psutil.NoSuchProcess, AttributeError):
            return 0.0
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL the whole group if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # pool children left behind, if any
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def queue_depth(broker, queue: str) -> int:
    """Messages in a kombu Redis queue: the base list plus one list per priority step."""
    return sum(broker.llen(queue if p == 0 else f"{queue}:{p}") for p in range(PRIORITY_STEPS))


def wait_until(
    value: Callable[[], int],
    target: int,
    worker: Worker | None = None,
    *,
    stall_s: float = 60.0,
    poll_s: float = 0.01,
    timeline: list | None = None,
    on_first: Callable[[int], None] | None = None,
) -> tuple[float, float]:
    """Poll ``value()`` until it reaches ``target``.

    Returns ``(first, last)``: ``perf_counter`` times when the value was first
    seen above 0 and when it reached the target. ``timeline`` gets
    ``[seconds since first, value]`` about once a second; ``on_first(value)``
    is called when the value is first seen above 0.
    """
    first = None
    next_mark = 0.0
    last_value, last_change = -1, time.monotonic()
    while True:
        current = value()
        now = time.perf_counter()
        if current > 0 and first is None:
            first = now
            if on_first is not None:
                on_first(current)
        if (
            first is not None
            and timeline is not None
            and (now - first >= next_mark or current >= target)
        ):
            timeline.append([round(now - first, 3), current])
            next_mark += 1.0
        if current >= target:
            return (first if first is not None else now), now
        mono = time.monotonic()
        if current != last_value:
            last_value, last_change = current, mono
        elif mono - last_change > stall_s:
            tail = worker.log_tail() if worker else ""
            raise RuntimeError(f"stuck at {current}/{target} for {stall_s:.0f}s\n{tail}")
        if worker is not None:
            worker.check(f"at {current}/{target}")
        time.sleep(poll_s)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def code_version() -> str:
    """The commit, plus ``-dirty`` when tracked files have changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT, text=True, capture_output=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")
