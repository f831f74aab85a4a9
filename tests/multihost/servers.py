"""The broker/database host's servers: a private PostgreSQL cluster and Redis.

Both listen only on the host's own address inside its namespace, so a
worker host whose link is cut loses them both, as on a real network. The
machine's own PostgreSQL and Redis are never used.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from intelgraph.bundled_redis import ping, server_binary
from tests.multihost.network import Host


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian layout), if any."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                        key=lambda p: int(Path(p).parent.parent.name))
    on_path = shutil.which("postgres")
    if candidates:
        return Path(candidates[-1]).parent
    return Path(on_path).parent if on_path else None


def unavailable_reason() -> str | None:
    if postgres_bin_dir() is None:
        return "no PostgreSQL server binaries (postgres, initdb) installed"
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return "no 'postgres' system user to run a private PostgreSQL cluster as"
    return None


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _terminate(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM (a clean shutdown), SIGKILL if it takes longer than ``timeout``."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class HostPostgres:
    """A throwaway cluster in a temporary directory, trust auth for the test network."""

    port = 5432

    def __init__(self, host: Host, network_prefix: str) -> None:
        self.host = host
        self.bin = postgres_bin_dir()
        # Outside pytest's root-only tmp tree: the postgres user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="intelgraph-multihost-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        shutil.chown(self.root, "postgres", "postgres")
        self.network_prefix = network_prefix
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@{self.host.address}:{self.port}/postgres"

    def _as_postgres(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args]

    def start(self) -> None:
        subprocess.run(self._as_postgres([str(self.bin / "initdb"), "-D", str(self.data),
                                          "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.network_prefix}.0/24 trust\n")
        settings = {
            "listen_addresses": f"'{self.host.address}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            # A worker cut off mid-transaction must not hold row locks for ever:
            # the server ends such a session (docs/scaling.md recommends this).
            "idle_in_transaction_session_timeout": "'5s'",
            "max_connections": "200",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        log = open(self.log, "ab")  # noqa: SIM115 (owned by the child)
        self.process = subprocess.Popen(
            self.host.command(self._as_postgres([str(self.bin / "postgres"), "-D", str(self.data)])),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        ready = [str(self.bin / "pg_isready"), "-q", "-h", self.host.address, "-p", str(self.port)]
        _wait(lambda: subprocess.run(ready).returncode == 0, 30, "the private PostgreSQL")

    def stop(self) -> None:
        _terminate(self.process, 15)
        shutil.rmtree(self.root, ignore_errors=True)


class HostRedis:
    """A Redis-compatible server with AOF and a password, bound to the host's address."""

    port = 6379
    password = "multihost-test-password"

    def __init__(self, host: Host) -> None:
        self.host = host
        self.root = Path(tempfile.mkdtemp(prefix="intelgraph-multihost-redis-"))
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 1) -> str:
        return f"redis://:{self.password}@{self.host.address}:{self.port}/{db}"

    def start(self) -> None:
        args = [server_binary(prefer_system=True), "--bind", self.host.address,
                "--port", str(self.port), "--requirepass", self.password,
                "--appendonly", "yes", "--save", "", "--dir", str(self.root),
                "--maxmemory-policy", "noeviction"]
        log = open(self.root / "server.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(self.host.command(args), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        _wait(lambda: ping(self.host.address, self.port, self.password), 15,
              "the private Redis")

    def stop(self) -> None:
        _terminate(self.process, 10)
        shutil.rmtree(self.root, ignore_errors=True)


