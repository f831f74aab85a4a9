"""BullMQ, the suite's third system: its install, its Node script, its worker process.

The Node side is ``bench/bullmq/`` (``package.json`` and ``package-lock.json``
pin BullMQ and ioredis; ``bench.mjs`` enqueues and works). The suite's parent
calls ``prepare()`` once: Node ≥ 18 and npm on PATH, ``npm ci`` into
``bench/bullmq/node_modules`` when the lock file changed since the last install.
Anything missing or failing gives a ``Setup`` with ``skipped`` set, and the
rest of the suite runs without BullMQ. In the child, the scenario modules drive
BullMQ as they drive the other two systems: the same sizes, the same waits on
the counter database, a fresh worker process per drain (``NodeWorker``); only
the enqueuing runs in Node (``BullMQSide``), which times its own calls.

BullMQ uses its own database of the private server (``DB``; the broker is on 1,
the counters on 0) with its default ``bull`` prefix and the queue ``bench``;
``Context.reset`` flushes that database with the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ROOT, Worker

DIR = ROOT / "bench" / "bullmq"
SCRIPT = DIR / "bench.mjs"
LOCK = DIR / "package-lock.json"
#: Written into ``node_modules`` after a good ``npm ci``: the lock file it installed.
STAMP = DIR / "node_modules" / ".intelgraph-lock-sha256"
MIN_NODE = 18
#: ``npm ci`` of two packages and their 18 dependencies takes seconds; a slow registry, minutes.
INSTALL_TIMEOUT_S = 300
COMMAND_TIMEOUT_S = 120
DB = 2
#: The suite's scenarios BullMQ has a counterpart in (not ``delayed``).
SCENARIOS = ("throughput", "latency", "priority")
QUEUE = "bench"
PREFIX = "bull"
#: BullMQ workers tried on the no-op drain, one process each; the best is reported.
DRAIN_CONCURRENCIES = (1, 10, 50)
#: Latency and priority: as many jobs at once as the other systems' worker (prefork c2).
CONCURRENCY = 2


@dataclass(frozen=True)
class Setup:
    """What ``prepare`` found: versions used, or why BullMQ is skipped."""

    node: str | None = None
    bullmq: str | None = None
    skipped: str | None = None

    @property
    def ready(self) -> bool:
        return self.skipped is None

    def describe(self) -> str:
        if self.skipped:
            return f"BullMQ skipped: {self.skipped}"
        return f"BullMQ {self.bullmq} on Node {self.node}"


def node_major(version: str) -> int:
    """``v20.20.2`` → 20."""
    try:
        return int(version.strip().lstrip("v").split(".")[0])
    except ValueError as error:
        raise ValueError(f"not a Node version: {version!r}") from error


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def prepare(env: dict[str, str] | None = None) -> Setup:
    """Check Node and npm, install the locked packages when needed, report versions."""
    env = dict(os.environ if env is None else env)
    path = env.get("PATH", "")
    node, npm = shutil.which("node", path=path), shutil.which("npm", path=path)
    if not node:
        return Setup(skipped="node is not on PATH (Node ≥ 18 and npm are needed)")
    if not npm:
        return Setup(skipped="npm is not on PATH (it installs bench/bullmq/package-lock.json)")
    try:
        version = _run([node, "--version"], env, 30).strip()
        major = node_major(version)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return Setup(skipped=f"node --version failed: {error}")
    if major < MIN_NODE:
        return Setup(node=version, skipped=f"Node {version} is older than {MIN_NODE}")
    digest = lock_digest()
    if not STAMP.exists() or STAMP.read_text().strip() != digest:
        try:
            _run([npm, "ci", "--no-audit", "--no-fund"], env, INSTALL_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as error:
            return Setup(node=version, skipped=f"npm ci in bench/bullmq failed: {_why(error)}")
        STAMP.parent.mkdir(parents=True, exist_ok=True)
        STAMP.write_text(digest + "\n")
    try:
        found = parse_line(_run([node, str(SCRIPT), "version"], env, 60))
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return Setup(node=version, skipped=f"bench.mjs does not load: {_why(error)}")
    return Setup(node=found["node"], bullmq=found["bullmq"])


def _run(command: list[str], env: dict[str, str], timeout: float) -> str:
    return subprocess.run(command, cwd=DIR, env=env, capture_output=True, text=True,
                          timeout=timeout, check=True).stdout  # fmt: skip


def _why(error: BaseException) -> str:
    """The last lines of a failed command's stderr, or the error itself."""
    stderr = getattr(error, "stderr", None)
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    tail = " | ".join((stderr or "").strip().splitlines()[-3:])
    return f"{error}: {tail}" if tail else str(error)


def command(scenario: str, redis_url: str, **options: object) -> list[str]:
    """``node bench.mjs SCENARIO --redis URL --option value …`` (``None`` options left out;
    dicts and lists as JSON)."""
    out = ["node", str(SCRIPT), scenario, "--redis", redis_url]
    for key, value in options.items():
        if value is None:
            continue
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        out += [f"--{key.replace('_', '-')}", text]
    return out


def parse_line(stdout: str) -> dict:
    """The figures: the last non-empty line of the script's output, a JSON object."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("bench.mjs printed nothing")
    try:
        figures = json.loads(lines[-1])
    except json.JSONDecodeError as error:
        raise ValueError(f"bench.mjs printed {lines[-1][:200]!r}, not JSON") from error
    if not isinstance(figures, dict):
        raise ValueError(f"bench.mjs printed {lines[-1][:200]!r}, not a JSON object")
    if "error" in figures:
        raise ValueError(f"bench.mjs failed: {figures['error']}")
    return figures


def url_for(server_url: str, db: int = DB) -> str:
    """The same server, another database: ``redis://h:p/1`` → ``redis://h:p/2``."""
    return f"{server_url.rsplit('/', 1)[0]}/{db}"


def depth(client) -> int:
    """Jobs waiting: the wait list plus the prioritized set (BullMQ keeps them apart)."""
    return client.llen(f"{PREFIX}:{QUEUE}:wait") + client.zcard(f"{PREFIX}:{QUEUE}:prioritized")


def verify_completed(client, jobs: int) -> None:
    """As the service's rows are checked: exactly ``jobs`` completed, none failed."""
    done = client.zcard(f"{PREFIX}:{QUEUE}:completed")
    failed = client.zcard(f"{PREFIX}:{QUEUE}:failed")
    if (done, failed) != (jobs, 0):
        raise RuntimeError(f"bullmq: {done} completed and {failed} failed jobs, expected {jobs}")


class NodeWorker(Worker):
    """``node bench.mjs worker``: one BullMQ ``Worker`` in one process, handled like the
    Celery workers (own process group, SIGTERM then SIGKILL, CPU and RSS from psutil)."""

    def __init__(self, env: dict[str, str], log_path: Path, *, concurrency: int) -> None:
        self.system = "bullmq"
        self.args = command("worker", env["BENCH_BULLMQ_URL"],
                            counter=env["BENCH_COUNTER_URL"], concurrency=concurrency)  # fmt: skip
        self.env = env
        self.log_path = log_path
        self.process = None


class BullMQSide:
    """The enqueuing side: one ``bench.mjs serve`` process on one warm connection.

    Each call sends one command and waits for its figures. The Node script times
    its own calls and takes ``t0`` itself, so the pipe between the two processes
    is in no figure.
    """

    system = "bullmq"

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  (closed in shutdown)
        self.process = subprocess.Popen(
            command("serve", env["BENCH_BULLMQ_URL"]), cwd=DIR, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True,
        )  # fmt: skip

    def ask(self, scenario: str, **options: object) -> dict:
        """Run one scenario in the serve process; its figures."""
        try:
            self.process.stdin.write(json.dumps({"scenario": scenario, **options}) + "\n")
            self.process.stdin.flush()
            return parse_line(self.process.stdout.readline())
        except (OSError, ValueError) as error:
            self._log.flush()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"bullmq {scenario}: {error}\n{tail}") from error

    def one_at_a_time(self, task: str, count: int) -> float:
        """Seconds for ``count`` ``queue.add`` calls, each awaited before the next."""
        return self.ask("enqueue-one", jobs=count, name=task)["seconds"]

    def bulk(self, task: str, items: list[dict], *, priority: int | None = None) -> float:
        """``addBulk`` of 1,000 a call; ``priority`` is a ``JobPriority``, which BullMQ
        reads the same way (1 first). Seconds for all of them."""
        if any(item != items[0] for item in items):
            raise ValueError("bullmq: bulk sends one payload for all its jobs")
        data = items[0] if items else {}
        return self.ask("enqueue-bulk", jobs=len(items), name=task, data=data,
                        priority=priority)["seconds"]  # fmt: skip

    def probes(self, kind: str, rate: float, count: int) -> float:
        """bench/latency.py's open loop, run in Node; seconds the sending took."""
        return self.ask("probes", jobs=count, rate=rate, kind=kind)["seconds"]

    def critical(self, arrival: str, count: int, priority: int) -> tuple[float, float]:
        """bench/priority.py's CRITICAL jobs; (sent at, seconds the sending took)."""
        figures = self.ask("critical", jobs=count, priority=priority, arrival=arrival)
        return figures["sent_at"], figures["enqueue_s"]

    def close(self) -> None:
        """Between steps: nothing to release (the connection is BullMQ's own database)."""

    def shutdown(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
