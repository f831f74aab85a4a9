"""Flower against the private broker: basic auth on its API, the running workers listed,
and no start at all with an empty or placeholder credential."""

from __future__ import annotations

import base64
import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.processes import ServiceProcess, base_env, wait_for

CELERY = str(Path(sys.executable).with_name("celery"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_get(url: str, authorization: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


CREDENTIAL = "ops:flower-test-Pw-2d9x"
CONF = "--conf=intelgraph/flowerconfig.py"


def flower(port: int, tmp: Path, broker: str, auth: str | None) -> ServiceProcess:
    """Flower as the Procfile starts it: credentials in its environment, not its arguments."""
    env = base_env(broker, tmp)
    env.pop("FLOWER_BASIC_AUTH", None)
    if auth is not None:
        env["FLOWER_BASIC_AUTH"] = auth
    return ServiceProcess(
        [CELERY, "-A", "intelgraph", "flower", CONF, "--address=127.0.0.1", f"--port={port}",
         f"--db={tmp / 'flower.db'}", "--persistent=True"],
        env, tmp / f"flower-{port}.log", ready_text="Visit me at",
    )


def test_flower_api_needs_credentials_and_lists_running_workers(service, live_broker,
                                                                 service_tmp):
    port = free_port()
    process = flower(port, service_tmp, live_broker, CREDENTIAL).start()
    try:
        base = f"http://127.0.0.1:{port}"
        status, _ = get(f"{base}/api/workers")
        assert status == 401
        assert get(f"{base}/api/workers", "ops:wrong")[0] == 401
        assert get(f"{base}/api/workers", "")[0] == 401
        assert raw_get(f"{base}/api/workers", "Basic !") == 401  # decodes to ""
        cmdline = " ".join(psutil.Process(process.pid).cmdline())
        assert "flower-test-Pw" not in cmdline  # what ps shows every user

        def workers() -> dict | None:
            code, body = get(f"{base}/api/workers?refresh=1", CREDENTIAL)
            listed = json.loads(body or b"{}") if code == 200 else {}
            return listed if any(name.startswith("shared@") for name in listed) else None

        listed = wait_for(workers, 30, interval=0.5, message="Flower to list the shared worker")
        shared = next(v for k, v in listed.items() if k.startswith("shared@"))
        consumed = {q["name"] for q in shared.get("active_queues", [])}
        assert {"email", "notifications", "data-processing", "analytics"} <= consumed
    finally:
        process.stop()


@pytest.mark.parametrize("auth", [None, "", "user:password", "admin:admin", "ops:changeme-now1",
                                  "ops:aaaaaaaaaaaaaaaa"])
def test_flower_refuses_to_start_without_a_real_credential(live_broker, tmp_path, auth):
    port = free_port()
    process = flower(port, tmp_path, live_broker, auth)
    with pytest.raises(AssertionError, match="exited early"):
        process.start(timeout=60)
    assert process.process.returncode != 0
    assert "Flower refuses to start: FLOWER_BASIC_AUTH" in process.log_text()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # never listened
