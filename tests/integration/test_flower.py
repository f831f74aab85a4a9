"""Flower against the private broker: basic auth on its API, and the running workers listed."""

from __future__ import annotations

import base64
import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.processes import ServiceProcess, base_env, wait_for

CELERY = str(Path(sys.executable).with_name("celery"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_flower_api_needs_credentials_and_lists_running_workers(service, live_broker,
                                                                 service_tmp):
    port = free_port()
    flower = ServiceProcess(
        [CELERY, "-A", "intelgraph", "flower", "--address=127.0.0.1", f"--port={port}",
         "--basic-auth=ops:flower-pw", f"--db={service_tmp / 'flower.db'}", "--persistent=True"],
        base_env(live_broker, service_tmp), service_tmp / "flower.log",
        ready_text="Visit me at",
    )
    flower.start()
    try:
        base = f"http://127.0.0.1:{port}"
        status, _ = get(f"{base}/api/workers")
        assert status == 401
        assert get(f"{base}/api/workers", "ops:wrong")[0] == 401

        def workers() -> dict | None:
            code, body = get(f"{base}/api/workers?refresh=1", "ops:flower-pw")
            listed = json.loads(body or b"{}") if code == 200 else {}
            return listed if any(name.startswith("shared@") for name in listed) else None

        listed = wait_for(workers, 30, interval=0.5, message="Flower to list the shared worker")
        shared = next(v for k, v in listed.items() if k.startswith("shared@"))
        consumed = {q["name"] for q in shared.get("active_queues", [])}
        assert {"email", "notifications", "data-processing", "analytics"} <= consumed
    finally:
        flower.stop()
