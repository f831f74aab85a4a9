"""``manage.py runservice`` (what ``make run`` calls): the whole service in one terminal.

Finds a broker (``REDIS_URL``/``REDIS_*``/``CELERY_BROKER_URL``, else a
Redis on localhost:6379, else the bundled server with AOF under ``var/``),
migrates, seeds schedules and runs the Procfile with honcho.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand

from intelgraph import bundled_redis
from settings.environment import BASE_DIR, VAR_DIR, env


class Command(BaseCommand):
    help = "Run web (4000), workers, beat, promoter and Flower (5555) from the Procfile."

    def handle(self, *args, **options) -> None:
        VAR_DIR.mkdir(exist_ok=True)
        (BASE_DIR / "logs").mkdir(exist_ok=True)
        child_env = dict(os.environ)
        server = None
        if not _broker_configured():
            if bundled_redis.ping("127.0.0.1", 6379):
                self.stdout.write("Using the Redis on 127.0.0.1:6379 (db 1).")
            else:
                server = bundled_redis.BundledRedis(VAR_DIR / "redis", port=bundled_redis.DEFAULT_PORT,
                                                    password=_secret(VAR_DIR / "redis_password"))
                server.start()
                child_env["REDIS_URL"] = server.url(db=1)
                self.stdout.write(f"Started the bundled Redis-compatible server on 127.0.0.1:"
                                  f"{server.port} (password in var/redis_password, AOF in "
                                  f"{server.data_dir})")
        child_env.setdefault("FLOWER_BASIC_AUTH", _flower_auth(self.stdout))
        try:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("seed_schedules", verbosity=0)
            self._banner()
            procfile = BASE_DIR / "Procfile"
            honcho = Path(sys.executable).with_name("honcho")
            subprocess.run([str(honcho), "-f", str(procfile), "-d", str(BASE_DIR), "start"],
                           env=child_env, check=False)
        except KeyboardInterrupt:
            pass
        finally:
            if server is not None:
                server.stop()
                self.stdout.write("Bundled server stopped; queued jobs are kept in var/redis.")

    def _banner(self) -> None:
        self.stdout.write(
            "\nIntelGraph Tasks is starting:\n"
            "  web + API    http://localhost:4000/  (POST /api/jobs, GET /api/jobs/<id>)\n"
            "  admin        http://localhost:4000/admin/  (schedules: Periodic tasks)\n"
            "  signup       http://localhost:4000/signup/\n"
            "  Flower       http://127.0.0.1:5555/  (user/password: FLOWER_BASIC_AUTH)\n"
            "  create an admin user: .venv/bin/python manage.py createsuperuser\n"
            "  stop: Ctrl+C\n"
        )


def _broker_configured() -> bool:
    return any(env.str(name, default="") for name in ("REDIS_URL", "REDIS_HOST", "CELERY_BROKER_URL"))


def _secret(path: Path) -> str:
    """A random secret kept in ``path`` (created on first use, owner-only)."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def _flower_auth(stdout) -> str:
    """FLOWER_BASIC_AUTH, or a generated password kept in var/ and printed once."""
    path = VAR_DIR / "flower_basic_auth"
    if path.exists():
        return path.read_text().strip()
    value = f"admin:{secrets.token_urlsafe(18)}"
    path.write_text(value)
    path.chmod(0o600)
    stdout.write(f"Generated Flower credentials (shown once, kept in {path}): {value}")
    return value


