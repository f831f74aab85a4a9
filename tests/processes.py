"""Real service processes for tests: Celery workers, the promoter, beat.

Each runs as a subprocess against the test database and the private broker,
logging to a file the test can read when something goes wrong.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

from settings.environment import BASE_DIR

CELERY = str(Path(sys.executable).with_name("celery"))


def database_url() -> str:
    """A URL for the test database as the test process sees it (after creation)."""
    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or ""
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{cfg.get('HOST') or '127.0.0.1'}:{cfg.get('PORT') or 5432}/{cfg['NAME']}"


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05,
             message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


class ServiceProcess:
    """A subprocess in its own process group, with its output in ``log_path``."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path,
                 ready_text: str | None = None) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.ready_text = ready_text
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (owned by the child)
        self.process = subprocess.Popen(self.args, env=self.env, cwd=BASE_DIR, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        if self.ready_text:
            wait_for(lambda: self._ready(), timeout, message=f"{self.args[:3]} to be ready "
                     f"(log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.args[:4]} exited early:\n{self.log_text()[-3000:]}")
        return self.ready_text in self.log_text()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def kill_group(self) -> None:
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL the group if it lingers."""
        if not self.process or self.process.poll() is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill_group()


def base_env(broker_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.test",
        "TEST_BROKER_URL": broker_url,
        "DATABASE_URL": database_url(),
        "EMAIL_FILE_PATH": str(tmp / "mail"),
        "LOG_DIR": str(tmp / "logs"),
        "PYTHONUNBUFFERED": "1",
        "JOB_PROMOTER_INTERVAL": "0.05",
        "JOB_RELAY_GRACE": "1",
        "JOB_WORKER_GONE_AFTER": "5",
        "JOB_STUCK_AFTER": "3",
        "JOB_RECONCILE_EVERY": "1",
        "JOB_CANCEL_GRACE": "2",
        # Retention would delete the finished jobs the soak's checker counts.
        "JOB_RETENTION_EVERY": "86400",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def worker(broker_url: str, tmp: Path, name: str, queues: str = "email,notifications,data-processing,analytics",
           concurrency: int = 2, pool: str = "prefork", extra_args: tuple[str, ...] = (),
           **env: str) -> ServiceProcess:
    args = [CELERY, "-A", "intelgraph", "worker", "-Q", queues, "-n", f"{name}@%h",
            "-c", str(concurrency), "-P", pool, "-l", "INFO", "--without-mingle",
            "--without-gossip", *extra_args]
    return ServiceProcess(args, base_env(broker_url, tmp, **env), tmp / f"{name}.log",
                          ready_text="ready.")


def promoter(broker_url: str, tmp: Path, name: str = "promoter", **env: str) -> ServiceProcess:
    args = [sys.executable, "manage.py", "promoter", "--interval", "0.05"]
    return ServiceProcess(args, base_env(broker_url, tmp, **env), tmp / f"{name}.log",
                          ready_text="promoter started")


def beat(broker_url: str, tmp: Path, name: str = "beat", **env: str) -> ServiceProcess:
    args = [CELERY, "-A", "intelgraph", "beat", "-S",
            "tasks.upkeep.scheduler:ExactlyOnceScheduler", "-l", "DEBUG",
            "--pidfile=", "-s", str(tmp / f"{name}-schedule")]
    return ServiceProcess(args, base_env(broker_url, tmp, **env), tmp / f"{name}.log",
                          ready_text="beat: Starting")


def supervise(*procs: ServiceProcess) -> None:
    """Restart a service process that exited, as systemd or honcho would in production.

    A Celery worker can exit with "Unrecoverable error" when its broker
    connection drops at a bad moment (kombu restoring unacked messages on a
    connection that is already gone); the fault tests kill the broker on purpose.
    """
    for proc in procs:
        if proc.process is not None and proc.process.poll() is not None:
            proc.start()
