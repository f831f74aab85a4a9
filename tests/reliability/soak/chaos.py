"""The service under test, and the chaos loop that kills its parts at random.

``Service`` owns the soak's processes: two prefork workers on every queue,
the promoter, beat, and (when the session owns it) the private broker.
``Chaos`` kills them by a seeded random choice that keeps each kind of
fault on pace to reach its minimum (``plan.ChaosTargets``) by the time the
producers finish, and counts what it did.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from django.db import connection

from tasks.queues import queue_registry
from tests import broker_plugin, processes
from tests.reliability.soak.plan import QUEUES, ChaosTargets

WORKERS = ("chaos1", "chaos2")
#: A tick on pace for every minimum does one more fault at these odds: each killed main
#: process costs seconds of a 2-core machine to restart, so more is not better.
EXTRA_ODDS = 0.3


@dataclass
class Service:
    """The soak's own service processes (the session's shared ones are stopped meanwhile)."""

    broker_url: str
    tmp: Path
    workers: dict[str, processes.ServiceProcess] = field(default_factory=dict)
    promoter: processes.ServiceProcess | None = None
    beat: processes.ServiceProcess | None = None
    #: Process groups of killed worker main processes whose pool children may linger.
    orphan_groups: set[int] = field(default_factory=set)
    #: Where each worker's latest start begins in its (appended) log.
    log_offsets: dict[str, int] = field(default_factory=dict)

    def worker(self, name: str) -> processes.ServiceProcess:
        return processes.worker(self.broker_url, self.tmp, name, concurrency=2)

    def start(self) -> None:
        for name in WORKERS:
            self.restart_worker(name, wait=True)
        self.promoter = processes.promoter(self.broker_url, self.tmp).start()
        self.start_beat()

    def start_beat(self) -> None:
        self.beat = processes.beat(self.broker_url, self.tmp, BEAT_MAX_LOOP_INTERVAL="1")
        self.beat.start()

    def restart_worker(self, name: str, wait: bool = False) -> None:
        """A new worker process under the same name; without waiting for it to be ready, so
        the chaos goes on while it starts (it may well be killed again while starting)."""
        proc = self.worker(name)
        self.log_offsets[name] = len(proc.log_text())
        if not wait:
            proc.ready_text = None
        self.workers[name] = proc.start()

    def ready(self, name: str) -> bool:
        """True once worker ``name``'s latest process said "ready." (restarted if it died)."""
        proc = self.workers[name]
        if proc.process.poll() is not None:
            self.restart_worker(name)
            return False
        return "ready." in proc.log_text()[self.log_offsets.get(name, 0):]

    def revive(self, wait: bool = False) -> int:
        """Restart whatever exited by itself (a worker's "Unrecoverable error" when the broker
        died under it, say), as systemd would; returns how many."""
        revived = 0
        for name, proc in list(self.workers.items()):
            if proc.process.poll() is not None:
                self.restart_worker(name, wait)
                revived += 1
        if self.promoter.process.poll() is not None:
            self.promoter.start()
            revived += 1
        if self.beat is not None and self.beat.process.poll() is not None:
            self.start_beat()
            revived += 1
        server = broker_plugin.private_server()
        if server is not None and server.process.poll() is not None:
            server.start()
            revived += 1
        return revived

    def stop_beat(self) -> None:
        if self.beat is not None:
            self.beat.stop()
            self.beat = None

    def stop(self) -> None:
        for proc in [*self.workers.values(), self.promoter]:
            if proc is not None:
                proc.stop()
        self.stop_beat()
        for group in self.orphan_groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class Chaos:
    """Seeded random faults, each kind kept on pace for its minimum over ``seconds``."""

    def __init__(self, service: Service, rng: random.Random, targets: ChaosTargets,
                 seconds: float) -> None:
        self.service = service
        self.rng = rng
        self.seconds = seconds
        self.started = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.paused: dict[str, float] = {}  # queue -> when to resume
        self.broker = broker_plugin.private_server()
        self.rabbitmq = self.broker is None and rabbitmqctl_works(service.broker_url)
        self.postgres = connection.vendor == "postgresql"
        #: Other processes of the test's own whose connections count as the service's.
        self.producer_pids: list[int] = []
        wanted = {"worker": targets.worker_kills, "promoter": targets.promoter_kills,
                  "beat": targets.beat_kills, "pause": targets.pauses}
        if self.broker is not None or self.rabbitmq:
            wanted["broker"] = targets.broker_kills
        if self.postgres:
            wanted["db"] = targets.db_terminations
        self.targets = wanted
        #: Beyond the minimums, a fault of each kind at these odds.
        self.weights = {"worker": 8.0, "promoter": 1.0, "beat": 1.0, "pause": 0.5,
                        "broker": 0.25, "db": 0.5}

    def not_injected(self) -> list[str]:
        """The faults this run cannot make, and why (printed, never silently skipped)."""
        reasons = []
        if self.rabbitmq:
            reasons.append("broker kill -9: RabbitMQ is shared, not the test's; instead the "
                           "service's AMQP connections are closed (rabbitmqctl close_connection)")
        elif "broker" not in self.targets:
            reasons.append("broker faults: TEST_BROKER_URL names a broker this test does not "
                           "own and rabbitmqctl cannot close its connections")
        if "db" not in self.targets:
            reasons.append(f"database session terminations: {connection.vendor} has no server "
                           "sessions (PostgreSQL only)")
        return reasons

    def done(self, kind: str) -> int:
        if kind == "worker":
            return sum(self.counts[k] for k in ("worker-child", "worker-main", "worker-group"))
        if kind == "db":
            return self.counts["db-terminations"]
        return self.counts[kind if kind != "pause" else "pauses"]

    def targets_met(self) -> bool:
        return all(self.done(kind) >= n for kind, n in self.targets.items())

    def choose(self) -> str:
        """The kind furthest behind its pace; when none is behind, a weighted random one."""
        share = min(1.0, (time.monotonic() - self.started) / self.seconds)
        behind = {kind: n * share - self.done(kind) for kind, n in self.targets.items()}
        worst = max(behind.values())
        if worst >= 1:
            return self.rng.choice(sorted(k for k, v in behind.items() if v == worst))
        if self.rng.random() > EXTRA_ODDS:
            return "nothing"
        kinds = sorted(self.targets)
        return self.rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]

    def tick(self) -> None:
        """Resume what is due, restart what died, then one fault."""
        self.resume_due()
        self.counts["exits"] += self.service.revive()
        kind = self.choose()
        getattr(self, f"_{kind}")()

    def _nothing(self) -> None:
        """A quiet tick: the extra faults come at ``EXTRA_ODDS``."""

    def _worker(self) -> None:
        name = self.rng.choice(sorted(self.service.workers))
        proc = self.service.workers[name]
        try:
            children = psutil.Process(proc.pid).children()
        except psutil.NoSuchProcess:
            children = []
        roll = self.rng.random()
        if children and roll < 0.65:
            self.rng.choice(children).send_signal(signal.SIGKILL)
            self.counts["worker-child"] += 1
            return
        if roll < 0.85:  # the main process alone: its pool children are orphaned
            proc.signal(signal.SIGKILL)
            proc.process.wait(10)
            self.service.orphan_groups.add(proc.pid)
            self.counts["worker-main"] += 1
        else:
            proc.kill_group()
            self.counts["worker-group"] += 1
        self.service.restart_worker(name)

    def _promoter(self) -> None:
        self.service.promoter.kill_group()
        self.counts["promoter"] += 1
        self.service.promoter.start()

    def _beat(self) -> None:
        self.service.beat.kill_group()
        self.counts["beat"] += 1
        self.service.start_beat()

    def _broker(self) -> None:
        """kill -9 the private server; it comes back from its AOF after a pause."""
        if self.broker is None:
            self.counts["broker"] += 1
            self.counts["amqp-closed"] += close_amqp_connections(self._service_pids())
            return
        self.broker.kill()
        self.counts["broker"] += 1
        time.sleep(self.rng.uniform(0.5, 2.5))
        self.broker.start()

    def _service_pids(self) -> list[int]:
        pids = list(self.producer_pids)
        for proc in [*self.service.workers.values(), self.service.promoter, self.service.beat]:
            if proc is None or proc.process is None:
                continue
            try:
                main = psutil.Process(proc.pid)
                pids += [main.pid, *(child.pid for child in main.children(recursive=True))]
            except psutil.NoSuchProcess:
                pass
        return pids

    def _db(self) -> None:
        """Terminate every other session on the test database (workers, promoter, beat,
        producers): ``pg_terminate_backend``, as a failover or an admin would."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            self.counts["db-sessions"] += cursor.fetchone()[0]
        self.counts["db-terminations"] += 1

    def _pause(self) -> None:
        """Pause a queue through the operator API; it is resumed 1-4 s later."""
        free = sorted(set(QUEUES) - set(self.paused))
        if not free:
            return
        queue = self.rng.choice(free)
        queue_registry.get_queue(queue).pause(by="soak-chaos")
        self.paused[queue] = time.monotonic() + self.rng.uniform(1.0, 4.0)
        self.counts["pauses"] += 1

    def resume_due(self, everything: bool = False) -> None:
        for queue, when in list(self.paused.items()):
            if everything or time.monotonic() >= when:
                queue_registry.get_queue(queue).resume(by="soak-chaos")
                del self.paused[queue]

    def calm(self) -> None:
        """The chaos stops: every queue resumed, every process up and ready."""
        self.resume_due(everything=True)
        self.counts["exits"] += self.service.revive(wait=True)
        for name in list(self.service.workers):
            processes.wait_for(lambda name=name: self.service.ready(name), 90,
                               message=f"worker {name} to be ready after the chaos")


    def summary(self) -> str:
        keys = ("worker-child", "worker-main", "worker-group", "promoter", "beat", "broker",
                "amqp-closed", "db-terminations", "db-sessions", "pauses", "exits")
        return " ".join(f"{k}={self.counts[k]}" for k in keys)


def rabbitmqctl_works(broker_url: str) -> bool:
    """True when the broker is a local RabbitMQ that ``rabbitmqctl`` here can manage."""
    if not broker_url.startswith("amqp") or shutil.which("rabbitmqctl") is None:
        return False
    try:
        return subprocess.run(["rabbitmqctl", "-q", "status"], capture_output=True,
                              timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def close_amqp_connections(pids: list[int]) -> int:
    """Close, on the broker's side, the AMQP connections of these processes (and only
    theirs: the RabbitMQ is shared); returns how many.

    Matched by the client's local port: ``rabbitmqctl list_connections`` gives each
    connection's peer port, psutil the ports our processes hold to 5672.
    """
    ports = set()
    for pid in pids:
        try:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == 5672:
                    ports.add(conn.laddr.port)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    listed = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "peer_port"],
                            capture_output=True, text=True, timeout=60).stdout
    victims = [line.split()[0] for line in listed.splitlines()
               if len(line.split()) == 2 and line.split()[1].isdigit()
               and int(line.split()[1]) in ports]
    closing = [subprocess.Popen(["rabbitmqctl", "-q", "close_connection", pid, "soak chaos"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for pid in victims]
    for proc in closing:
        proc.wait(60)
    return len(victims)
