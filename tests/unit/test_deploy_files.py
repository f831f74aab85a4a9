"""deploy/ stays in step with the Procfile and .env.example (no Docker engine here).

docker-compose.yml and the systemd units must run the Procfile's processes
with the same queues, node names and options, and name only variables that
.env.example documents. ``check --deploy`` and the WhiteNoise settings are
run for real in a subprocess with settings.prod.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from settings.environment import BASE_DIR

DEPLOY = BASE_DIR / "deploy"
UNITS = DEPLOY / "systemd"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"

#: Services of the compose file that are not Procfile processes.
COMPOSE_EXTRAS = {"migrate", "redis", "postgres"}
#: Units that are not Procfile processes.
UNIT_EXTRAS = {"intelgraph-migrate.service"}
#: Variables read by the Redis and PostgreSQL images, not by this service.
IMAGE_VARIABLES = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "REDISCLI_AUTH"}
#: Options whose values must match the Procfile's exactly.
SAME_VALUE = ("-A", "-Q", "-n", "-S", "--port", "--pidfile", "--persistent", "--db", "--conf")
HOST_ENV = "/etc/intelgraph/intelgraph.env"
FORCED_ENV = "/opt/intelgraph/deploy/systemd/production.env"

_VAR = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")


def procfile() -> dict[str, str]:
    lines = (BASE_DIR / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def documented_variables() -> set[str]:
    """Every ``NAME=`` in .env.example, commented-out alternatives included."""
    text = (BASE_DIR / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.M))


def procfile_variables() -> set[str]:
    found = set()
    for command in procfile().values():
        found |= set(_VAR.findall(command))
        found |= set(re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", command))
    return found


def argv(command: str | list[str]) -> list[str]:
    """A command as arguments, without leading VAR=value and with bare program names."""
    args = shlex.split(command) if isinstance(command, str) else list(command)
    while args and re.match(r"^[A-Z][A-Z0-9_]*=", args[0]):
        args.pop(0)
    return [Path(args[0]).name, *args[1:]]


def options(args: list[str]) -> dict[str, str]:
    """``-Q x`` and ``--port=5555`` alike, as {option: value} ('' for flags)."""
    found: dict[str, str] = {}
    for i, arg in enumerate(args):
        if not arg.startswith("-"):
            continue
        name, eq, value = arg.partition("=")
        if not eq and i + 1 < len(args) and not args[i + 1].startswith("-"):
            value = args[i + 1]
        found[name] = value
    return found


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def unit(name: str) -> dict[str, list[str]]:
    """A unit file as {key: [values]} (keys may repeat; sections ignored)."""
    entries: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def unit_command(name: str) -> list[str]:
    # systemd writes a literal % as %%; ${VAR} is its own expansion.
    return argv(unit(name)["ExecStart"][0].replace("%%", "%"))


# -- processes -----------------------------------------------------------------


def test_compose_runs_every_procfile_process_and_nothing_unexplained():
    services = set(compose()["services"])
    assert services == set(procfile()) | COMPOSE_EXTRAS


def test_systemd_has_one_unit_per_procfile_process():
    units = {path.name for path in UNITS.glob("*.service")}
    assert units == {f"intelgraph-{name}.service" for name in procfile()} | UNIT_EXTRAS


@pytest.mark.parametrize("name", sorted(procfile()))
def test_deployed_commands_match_the_procfile(name):
    expected = argv(procfile()[name])
    deployed = {
        "compose": argv(compose()["services"][name]["command"]),
        "systemd": unit_command(f"intelgraph-{name}.service"),
    }
    for where, args in deployed.items():
        if name == "web":  # runserver locally, gunicorn in production, same port
            assert args[0] == "gunicorn", where
            assert options(args)["--bind"].endswith(":4000"), where
            assert options(args)["-c"] == "deploy/gunicorn.conf.py", where
            continue
        assert args[0] == expected[0], where
        positional = [a for a in expected[1:4] if not a.startswith("-")]
        assert all(a in args for a in positional), (where, positional, args)
        want, got = options(expected), options(args)
        assert set(want) <= set(got), (where, set(want) - set(got))
        for option in SAME_VALUE:
            if option in want:
                assert got[option] == want[option], (where, option)
        for variable in _VAR.findall(procfile()[name]):
            assert variable in " ".join(args), (where, variable)


def test_web_listens_on_loopback_unless_web_bind_says_otherwise():
    assert "runserver ${WEB_BIND:-127.0.0.1}:4000" in procfile()["web"]
    web = unit("intelgraph-web.service")
    assert options(unit_command("intelgraph-web.service"))["--bind"] == "${WEB_BIND}:4000"
    # Defaults the host file may override: loopback, behind one reverse proxy.
    assert web["Environment"] == ["WEB_BIND=127.0.0.1", "TRUSTED_PROXY_COUNT=1"]
    # In a container 0.0.0.0 is the container's own interface; the host publishes it
    # on 127.0.0.1 only (test_published_ports_are_for_the_reverse_proxy_only).
    assert options(argv(compose()["services"]["web"]["command"]))["--bind"] == "0.0.0.0:4000"


def test_flower_credentials_never_on_a_command_line():
    """``ps`` shows command lines to every user: Flower reads its credentials from its
    environment through intelgraph/flowerconfig.py, which refuses empty or weak ones."""
    commands = {"Procfile": argv(procfile()["flower"]),
                "compose": argv(compose()["services"]["flower"]["command"]),
                "systemd": unit_command("intelgraph-flower.service")}
    for where, args in commands.items():
        assert not [a for a in args if "basic" in a.lower() or "FLOWER_" in a], where
        assert options(args)["--conf"] == "intelgraph/flowerconfig.py", where


def test_systemd_specifiers_are_escaped():
    """``%h`` in a unit is systemd's home directory, not Celery's host name."""
    for path in UNITS.glob("*.service"):
        for command in unit(path.name).get("ExecStart", []):
            assert not re.search(r"(?<!%)%[a-zA-Z]", command.replace("%%", "")), path.name


def test_systemd_units_verify_when_systemd_analyze_is_here(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed: unit syntax not verified")
    venv_bin = str(Path(sys.executable).parent)
    for path in [*UNITS.glob("*.service"), *UNITS.glob("*.target")]:
        text = path.read_text().replace("/opt/intelgraph/.venv/bin", venv_bin)
        (tmp_path / path.name).write_text(text)
    files = sorted(str(p) for p in tmp_path.iterdir())
    out = subprocess.run([tool, "verify", "--man=no", *files], capture_output=True, text=True,
                         timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "intelgraph" in line]
    assert not problems, "\n".join(problems)


# -- environment -----------------------------------------------------------------


def test_compose_names_only_documented_variables():
    text = COMPOSE_FILE.read_text()
    named = set(_VAR.findall(text))
    for service in compose()["services"].values():
        named |= set(service.get("environment") or {})
    unknown = named - documented_variables() - procfile_variables() - IMAGE_VARIABLES
    assert not unknown, f"not in .env.example: {sorted(unknown)}"


def test_systemd_names_only_documented_variables():
    named = set()
    for path in UNITS.glob("*.service"):
        entries = unit(path.name)
        named |= set(_VAR.findall(" ".join(entries.get("ExecStart", []))))
        named |= {value.split("=", 1)[0] for value in entries.get("Environment", [])}
    forced = (UNITS / "production.env").read_text()
    named |= set(re.findall(r"^([A-Z][A-Z0-9_]*)=", forced, flags=re.M))
    unknown = named - documented_variables() - procfile_variables()
    assert not unknown, f"not in .env.example: {sorted(unknown)}"


def test_every_app_process_gets_the_whole_environment_and_production_settings():
    services = compose()["services"]
    for name in [*procfile(), "migrate"]:
        service = services[name]
        assert service["env_file"] == ".env", name
        assert service["environment"]["DJANGO_SETTINGS_MODULE"] == "settings.prod", name
        assert "@postgres:5432/" in service["environment"]["DATABASE_URL"], name
        assert service["environment"]["REDIS_HOST"] == "redis", name
    for path in UNITS.glob("*.service"):
        # Order matters: the later file wins, and it forces settings.prod.
        assert unit(path.name)["EnvironmentFile"] == [HOST_ENV, FORCED_ENV], path.name
    assert "DJANGO_SETTINGS_MODULE=settings.prod" in (UNITS / "production.env").read_text()


def test_redis_keeps_jobs_and_requires_a_password():
    args = compose()["services"]["redis"]["command"]
    opts = options(args)
    assert opts["--appendonly"] == "yes" and opts["--appendfsync"] == "everysec"
    assert opts["--maxmemory-policy"] == "noeviction"
    assert "REDIS_PASSWORD" in opts["--requirepass"]
    assert "ports" not in compose()["services"]["redis"]  # never published
    assert "ports" not in compose()["services"]["postgres"]


def test_published_ports_are_for_the_reverse_proxy_only():
    services = compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert published == {"web": ["127.0.0.1:4000:4000"], "flower": ["127.0.0.1:5555:5555"]}


# -- production settings, for real ---------------------------------------------

#: The WhiteNoise lines proposed for settings/prod.py (docs/scaling.md); added here
#: only while settings.prod does not have them yet.
WHITENOISE_SETTINGS = '''
_security = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware")
MIDDLEWARE = [*MIDDLEWARE[: _security + 1], "whitenoise.middleware.WhiteNoiseMiddleware",
              *MIDDLEWARE[_security + 1 :]]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
'''


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The documented production environment, on a throwaway database and private broker."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.prod",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "tasks.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://tasks.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        # Never a Redis on 6379: the session's private server answers the broker checks.
        "CELERY_BROKER_URL": os.environ["TEST_BROKER_URL"],
        **extra,
    }


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_documented_environment(tmp_path):
    out = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_whitenoise_serves_hashed_static_files_behind_the_proxy(tmp_path):
    module = tmp_path / "whitenoise_prod.py"
    module.write_text(
        "from settings.prod import *  # noqa: F403\n"
        'if "whitenoise.middleware.WhiteNoiseMiddleware" not in MIDDLEWARE:\n'
        f"{textwrap.indent(WHITENOISE_SETTINGS, '    ')}\n"
        f"STATIC_ROOT = {str(tmp_path / 'static')!r}\n"
    )
    env = production_env(tmp_path, DJANGO_SETTINGS_MODULE="whitenoise_prod",
                         PYTHONPATH=os.pathsep.join([str(tmp_path), str(BASE_DIR)]))
    collected = manage(env, "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr
    assert manage(env, "check", "--deploy", "--fail-level", "WARNING").returncode == 0

    probe = textwrap.dedent("""
        import django; django.setup()
        from django.contrib.staticfiles.storage import staticfiles_storage
        from django.test import Client
        url = staticfiles_storage.url("admin/css/base.css")
        client = Client(HTTP_HOST="tasks.example.com")
        proxied = client.get(url, HTTP_X_FORWARDED_PROTO="https")
        plain = client.get(url)
        print(url, proxied.status_code, proxied.headers.get("Cache-Control"), plain.status_code,
              sep="|")
    """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=BASE_DIR, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    url, status, cache, plain_status = out.stdout.strip().splitlines()[-1].split("|")
    assert re.search(r"/static/admin/css/base\.[0-9a-f]{12}\.css$", url), url
    assert status == "200" and "max-age=315360000" in cache  # hashed: cached for ever
    assert plain_status == "301"  # plain HTTP from the proxy is sent to HTTPS
