"""Workers on two hosts, the broker and database on a third, one link cut mid-job.

Three network namespaces stand for three machines (``tests/multihost/network.py``):
``hub`` runs PostgreSQL, Redis (AOF, password) and the promoter; hosts ``a`` and
``b`` run one Celery worker each; the test process is the operator's host and
runs the web server whose ``/queues/health`` it reads. Nothing is shared
between hosts but the network. Skipped, with the reason printed, where
namespaces cannot be made (not root, no iproute2) or no PostgreSQL server
is installed to run on the hub.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from intelgraph.bundled_redis import free_port
from settings.environment import BASE_DIR
from tests.multihost import network, servers
from tests.processes import CELERY, ServiceProcess, base_env, supervise, wait_for

pytestmark = pytest.mark.timeout(420)

QUEUES = "email,notifications,data-processing,analytics"


@dataclass
class Cluster:
    net: network.Network
    env: dict[str, str]
    database_url: str
    health_url: str
    workers: dict[str, ServiceProcess] = field(default_factory=dict)
    hosts: dict[str, network.Host] = field(default_factory=dict)

    def enqueue(self, specs: list[dict]) -> list[str]:
        """``add_job`` on the operator host, through the network like any web process."""
        out = subprocess.run([sys.executable, "-m", "tests.multihost.client"], input=json.dumps(specs),
                             env=self.env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)

    def jobs(self, ids: list[str]) -> dict[str, dict]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute("SELECT id, state, worker, lost_count FROM tasks_job WHERE id = ANY(%s)",
                                [ids]).fetchall()
        return {r[0]: {"state": r[1], "worker": r[2], "lost_count": r[3]} for r in rows}

    def executions(self, keys: list[str]) -> dict[str, int]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute("SELECT key, count(*) FROM testapp_execution WHERE key = ANY(%s) "
                                "GROUP BY key", [keys]).fetchall()
        return {key: 0 for key in keys} | dict(rows)

    def health(self) -> tuple[int, dict]:
        """The health check's details (the metrics token shows them; anonymous sees status)."""
        request = urllib.request.Request(self.health_url,
                                         headers={"Authorization": f"Bearer {HEALTH_TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def wait_completed(self, ids: list[str], timeout: float) -> dict[str, dict]:
        def done():
            supervise(*self.workers.values())
            jobs = self.jobs(ids)
            return jobs if all(j["state"] == "completed" for j in jobs.values()) else None

        return wait_for(done, timeout, interval=0.2, message=f"{len(ids)} jobs to complete")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    reason = network.unavailable_reason() or servers.unavailable_reason()
    if reason:
        pytest.skip(f"multi-host test needs network namespaces and a PostgreSQL server: {reason}")
    tmp = tmp_path_factory.mktemp("multihost")
    net = network.Network()
    started: list = []
    try:
        hub = net.add_host("hub")
        hosts = {"w1": net.add_host("a"), "w2": net.add_host("b")}
        postgres = servers.HostPostgres(hub, net.prefix)
        started.append(postgres)
        postgres.start()
        redis = servers.HostRedis(hub)
        started.append(redis)
        redis.start()
        env = base_env(redis.url(1), tmp, DATABASE_URL=postgres.url, ALLOWED_HOSTS=net.address,
                       METRICS_TOKEN=HEALTH_TOKEN)
        migrate = subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], env=env,
                                 cwd=BASE_DIR, capture_output=True, text=True, timeout=180)
        assert migrate.returncode == 0, migrate.stderr[-3000:]

        promoter = ServiceProcess(hub.command([sys.executable, "manage.py", "promoter", "--interval", "0.05"]),
                                  env, tmp / "promoter.log", ready_text="promoter started")
        started.append(promoter.start())
        port = free_port()
        web = ServiceProcess([sys.executable, "manage.py", "runserver", f"{net.address}:{port}", "--noreload"],
                             env, tmp / "web.log", ready_text="Quit the server")
        started.append(web.start())
        cluster = Cluster(net, env, postgres.url, f"http://{net.address}:{port}/queues/health", hosts=hosts)
        for name, host in hosts.items():
            args = [CELERY, "-A", "intelgraph", "worker", "-Q", QUEUES, "-n", f"{name}@host-{host.name}",
                    "-c", "2", "-P", "prefork", "-l", "INFO", "--without-mingle", "--without-gossip"]
            proc = ServiceProcess(host.command(args), env, tmp / f"{name}.log", ready_text="ready.")
            cluster.workers[name] = proc.start()
            started.append(proc)
        yield cluster
    finally:
        for part in reversed(started):
            part.stop()
        net.close()


#: The operator's token for health details (32+ characters, as production requires).
HEALTH_TOKEN = "multihost-health-token-0123456789abcdef"


def _consumers(body: dict, queue: str = "data-processing") -> list[str]:
    return body.get("queues", {}).get(queue, {}).get("consumers", [])


def test_jobs_are_spread_over_both_worker_hosts(cluster):
    status, body = wait_for(lambda: (lambda s, b: (s, b) if s == 200 and len(_consumers(b)) == 2 else None)(
        *cluster.health()), 60, message="both workers in /queues/health")
    assert body["status"] == "ok", body
    assert _consumers(body) == ["w1@host-a", "w2@host-b"]

    ids = cluster.enqueue([{"key": f"spread{i}", "sleep": 0.3} for i in range(16)])
    jobs = cluster.wait_completed(ids, 60)
    by_host = {j["worker"] for j in jobs.values()}
    assert by_host == {"w1@host-a", "w2@host-b"}, by_host
    assert set(cluster.executions([f"spread{i}" for i in range(16)]).values()) == {1}


def test_a_cut_link_loses_no_job_is_reported_and_comes_back(cluster):
    host_a = cluster.hosts["w1"]
    long_keys = [f"long{i}" for i in range(4)]
    long_ids = cluster.enqueue([{"key": key, "sleep": 8} for key in long_keys])

    def running_on_a():
        jobs = cluster.jobs(long_ids)
        on_a = [i for i, j in jobs.items() if j["state"] == "active" and j["worker"] == "w1@host-a"]
        return on_a if on_a and sum(j["state"] == "active" for j in jobs.values()) == 4 else None

    on_a = wait_for(running_on_a, 30, interval=0.1, message="the long jobs running on both hosts")
    pid_before = cluster.workers["w1"].pid
    cut_at = time.monotonic()
    host_a.cut()
    # Jobs enqueued while the host is gone: a message host a's worker had popped
    # but never received is re-published by the reconciler.
    during_ids = cluster.enqueue([{"key": f"during{i}", "sleep": 0.2} for i in range(6)])

    def missing_reported():
        status, body = cluster.health()
        missing = [w["hostname"] for w in body.get("missing_workers", [])]
        return (status, body) if "w1@host-a" in missing else None

    status, body = wait_for(missing_reported, 40, interval=0.5, message="health to report host a's worker")
    reported_after = time.monotonic() - cut_at
    assert status == 200 and body["status"] == "degraded", body
    assert body["queues"]["data-processing"]["missing_consumers"] == ["w1@host-a"]
    assert _consumers(body) == ["w2@host-b"]
    assert any("w1@host-a stopped sending heartbeats" in w for w in body["warnings"])

    jobs = cluster.wait_completed(long_ids + during_ids, 120)
    for job_id in on_a:  # finished by the other host after the reconciler re-queued them
        assert jobs[job_id]["worker"] == "w2@host-b" and jobs[job_id]["lost_count"] == 1, jobs[job_id]
    assert {jobs[i]["worker"] for i in during_ids} == {"w2@host-b"}
    rescued_after = time.monotonic() - cut_at

    host_a.restore()

    def back():
        supervise(*cluster.workers.values())
        status, body = cluster.health()
        return body if status == 200 and body["status"] == "ok" and len(_consumers(body)) == 2 else None

    body = wait_for(back, 120, interval=0.5, message="host a's worker back in /queues/health")
    assert body["missing_workers"] == [] and _consumers(body) == ["w1@host-a", "w2@host-b"]
    restored_at = time.monotonic()

    # Its heartbeat comes back with the database connection; its broker
    # connection resumes when TCP next retransmits (the kernel backs off while
    # the link is down), which can take a while longer. Keep jobs coming
    # until host a takes some.
    def host_a_takes_jobs():
        batch = cluster.enqueue([{"key": f"after-{time.monotonic_ns()}-{i}", "sleep": 0.3}
                                 for i in range(8)])
        return "w1@host-a" in {j["worker"] for j in cluster.wait_completed(batch, 60).values()}

    wait_for(host_a_takes_jobs, 120, interval=0, message="host a to take jobs again")
    consuming_after = time.monotonic() - restored_at

    time.sleep(3)  # a late completion from host a would land now
    final = cluster.jobs(long_ids + during_ids)
    assert all(j["state"] == "completed" for j in final.values()), final
    for job_id in on_a:
        assert final[job_id]["worker"] == "w2@host-b", "host a's late run overwrote the record"
    runs = cluster.executions(long_keys + [f"during{i}" for i in range(6)])
    # Every job ran; a job cut off on host a ran at most twice (at-least-once,
    # docs/reliability.md): host a's run finishes its body once the link is back.
    assert all(1 <= n <= 2 for n in runs.values()), runs
    assert all(runs[f"during{i}"] == 1 for i in range(6)), runs
    restarted = cluster.workers["w1"].pid != pid_before
    print(f"\nmulti-host: cut host a with {len(on_a)} job(s) running; reported missing after "
          f"{reported_after:.1f}s; its jobs completed on host b {rescued_after:.1f}s after the cut; "
          f"host a's worker {'was restarted' if restarted else 'reconnected by itself'} and took jobs "
          f"{consuming_after:.1f}s after its heartbeat was back; runs {runs}")
