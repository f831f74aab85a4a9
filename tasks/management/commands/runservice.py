"""``manage.py runservice`` (what ``make run`` calls): the whole service in one terminal.

Finds a broker (``REDIS_URL``/``REDIS_*``/``CELERY_BROKER_URL``, else a
Redis on localhost:6379, else the bundled server with AOF under ``var/``),
migrates, seeds schedules and runs the Procfile with honcho.

Safe to leave running on a shared machine: the web process listens on
127.0.0.1 unless ``WEB_BIND`` says otherwise, DEBUG is off, ``var/`` and
``logs/`` are the owner's only (the settings package sets umask 077, which
every child inherits), and Flower gets a generated credential through its
environment, never its command line.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from intelgraph import bundled_redis
from settings import OWNER_ONLY_UMASK
from settings.environment import (
    BASE_DIR,
    VAR_DIR,
    basic_auth_problem,
    broker_configured,
    flower_basic_auth_given,
    web_bind,
)


class Command(BaseCommand):
    help = "Run web (4000), workers, beat, promoter and Flower (5555) from the Procfile."

    def handle(self, *args, **options) -> None:
        os.umask(OWNER_ONLY_UMASK)  # already set by the settings package; children inherit it
        private_dir(VAR_DIR)
        private_dir(Path(settings.LOG_DIR))
        child_env = dict(os.environ)
        child_env["WEB_BIND"] = web_bind()
        child_env["FLOWER_BASIC_AUTH"] = self._flower_auth()
        server = None
        if not broker_configured():
            if bundled_redis.ping("127.0.0.1", 6379):
                self.stdout.write("Using the Redis on 127.0.0.1:6379 (db 1).")
            else:
                password = secret_file(VAR_DIR / "redis_password",
                                       lambda: secrets.token_urlsafe(24))
                server = bundled_redis.BundledRedis(VAR_DIR / "redis",
                                                    port=bundled_redis.DEFAULT_PORT,
                                                    password=password)
                server.start()
                child_env["REDIS_URL"] = server.url(db=1)
                self.stdout.write(f"Started the bundled Redis-compatible server on 127.0.0.1:"
                                  f"{server.port} (password in var/redis_password, AOF in "
                                  f"{server.data_dir})")
        try:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("seed_schedules", verbosity=0)
            self.stdout.write(banner(child_env["WEB_BIND"]))
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

    def _flower_auth(self) -> str:
        """``FLOWER_BASIC_AUTH`` if set (refused when weak), else one generated into var/."""
        given = flower_basic_auth_given()
        if given:
            problem = basic_auth_problem(given)
            if problem:
                raise CommandError(f"FLOWER_BASIC_AUTH {problem}; unset it to have one "
                                   "generated into var/flower_basic_auth")
            return given
        path = VAR_DIR / "flower_basic_auth"
        fresh = not path.exists()
        value = secret_file(path, lambda: f"admin:{secrets.token_urlsafe(18)}")
        if fresh:
            self.stdout.write(f"Generated Flower credentials (shown once, kept in {path}): "
                              f"{value}")
        return value


def banner(bind: str) -> str:
    host = "localhost" if bind in ("127.0.0.1", "localhost") else bind
    base = f"http://{host}:4000"
    return (
        "\nIntelGraph Tasks is starting:\n"
        f"  dashboard    {base}/queues/  (log in: {base}/accounts/login/)\n"
        f"  API          {base}/api/jobs  (POST /api/jobs, GET /api/jobs/<id>)\n"
        f"  admin        {base}/admin/  (users, permissions, schedules)\n"
        f"  signup       {base}/signup/\n"
        f"  health       {base}/queues/health   metrics {base}/metrics\n"
        "  Flower       http://127.0.0.1:5555/  (user:password in FLOWER_BASIC_AUTH or "
        "var/flower_basic_auth)\n"
        f"  listening on {bind}:4000 (WEB_BIND); DEBUG is off unless DJANGO_DEBUG=true\n"
        "  create an admin user: .venv/bin/python manage.py createsuperuser\n"
        "  stop: Ctrl+C\n"
    )


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (tightened if an older run made it 0755)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def secret_file(path: Path, make) -> str:
    """The secret kept in ``path``; on first use ``make()``'s value, written to a file that
    is created 0600 (never written first and restricted afterwards)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        value = make()
        file.write(value)
    return value
