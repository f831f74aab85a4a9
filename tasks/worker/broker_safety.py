"""Is this broker safe as a store of jobs? A remote Redis without a password, or one that evicts.

Asked by ``manage.py check --deploy`` (``tasks.checks``) and when a worker
starts (``tasks.worker.bootstep``): a warning in development, a refusal where
``JOB_STRICT_BROKER_CHECKS`` is on (production).
"""

from __future__ import annotations

from urllib.parse import urlparse

from celery import current_app

from tasks.jobs.brokers import BrokerKind, broker_kind

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
EVICTING_POLICIES_OK = {"noeviction"}


def broker_url_problems(url: str) -> list[str]:
    """What the URL alone says: a remote Redis without a password."""
    if broker_kind(url) is not BrokerKind.REDIS:
        return []
    parsed = urlparse(url)
    if not parsed.password and (parsed.hostname or "") not in LOOPBACK_HOSTS:
        return [f"broker {parsed.hostname}:{parsed.port} is remote and has no password"]
    return []


def broker_server_problems(url: str, timeout_s: float = 0.5) -> list[str]:
    """What the server says: an eviction policy that may drop queued jobs."""
    if broker_kind(url) is not BrokerKind.REDIS:
        return []
    import redis

    problems = []
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        if policy and policy not in EVICTING_POLICIES_OK:
            problems.append(f"Redis maxmemory-policy is {policy!r}: it may evict queued jobs "
                            "(use noeviction)")
    except (redis.RedisError, OSError):  # unreachable, or CONFIG disabled (managed Redis)
        pass
    return problems


def broker_safety_problems(url: str | None = None) -> list[str]:
    """Why this broker is not safe as a store of jobs (empty list when it is)."""
    url = url or current_app.conf.broker_url or ""
    return broker_url_problems(url) + broker_server_problems(url)
