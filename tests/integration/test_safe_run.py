"""The Procfile's web process as ``make run`` starts it: loopback only, DEBUG off, static served.

The web line is run through ``/bin/sh`` like honcho runs it (so the
``${WEB_BIND:-127.0.0.1}`` default is the shell's), with settings.dev, on a
free port instead of 4000 and a throwaway database.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from settings.environment import BASE_DIR
from tests.processes import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_web() -> str:
    line = next(x for x in (BASE_DIR / "Procfile").read_text().splitlines()
                if x.startswith("web:"))
    return line.split(":", 1)[1].strip()


@contextmanager
def web_process(tmp_path: Path, **extra: str) -> Iterator[int]:
    port = free_port()
    command = procfile_web().replace(":4000", f":{port}")
    assert f":{port}" in command
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "WEB_BIND")}
    env.update(DJANGO_SETTINGS_MODULE="settings.dev", LOG_DIR=str(tmp_path / "logs"),
               DATABASE_URL=f"sqlite:///{tmp_path / 'dev.sqlite3'}",
               REDIS_URL=os.environ["TEST_BROKER_URL"], **extra)
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 (owned by the child)
    process = subprocess.Popen(["/bin/sh", "-c", command], cwd=BASE_DIR, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
        log.close()


def listening_address(port: int, tmp_path: Path) -> str:
    def found():
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                return conn.laddr.ip
        return None

    try:
        return wait_for(found, 60, interval=0.2, message=f"a listener on port {port}")
    except AssertionError:
        raise AssertionError((tmp_path / "web.log").read_text()[-3000:]) from None


def get(address: str, port: int, path: str, host: str = "localhost") -> tuple[int, str, str]:
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection(address, port, timeout=10)
            conn.request("GET", path, headers={"Host": host})
            response = conn.getresponse()
            return (response.status, response.getheader("Content-Type", ""),
                    response.read().decode(errors="replace"))
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_make_runs_web_listens_on_loopback_with_debug_off(tmp_path):
    with web_process(tmp_path) as port:
        assert listening_address(port, tmp_path) == "127.0.0.1"
        status, _, body = get("127.0.0.1", port, "/queues/", host="attacker.example")
        assert status == 400  # unknown Host: a plain refusal, not the debug page
        assert "CELERY_BROKER_URL" not in body and "Traceback" not in body
        status, _, body = get("127.0.0.1", port, "/no/such/page")
        assert status == 404 and "URLconf" not in body
        status, kind, body = get("127.0.0.1", port, "/static/dashboard/dashboard.css")
        assert status == 200 and kind.startswith("text/css") and "--accent" in body
        status, _, body = get("127.0.0.1", port, "/accounts/login/")
        assert status == 200 and "dashboard/dashboard.css" in body


@pytest.mark.parametrize("address", ["127.0.0.2"])
def test_web_bind_moves_the_listener(tmp_path, address):
    """Another loopback address stands in for a LAN one: the test opens nothing outward."""
    with web_process(tmp_path, WEB_BIND=address) as port:
        assert listening_address(port, tmp_path) == address
        assert get(address, port, "/accounts/login/")[0] == 200
