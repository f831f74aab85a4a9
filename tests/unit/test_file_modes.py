"""Files under var/ and logs/ are the owner's only; secrets are born 0600 (issue 13, point 5).

Each process starts with a permissive umask (022, a common default) to show
that the service itself, not the caller's shell, makes files private.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from settings.environment import BASE_DIR, basic_auth_problem
from tasks.management.commands import runservice
from tasks.operate.logformat import CombinedLogHandler

WRITE = ("import os, sys; open(sys.argv[-2], 'w').close(); os.mkdir(sys.argv[-1])")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def run_with_umask_022(args: list[str]) -> None:
    out = subprocess.run(args, cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: os.umask(0o022),
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test"})
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("entry", ["manage.py", "celery app"])
def test_service_processes_create_owner_only_files(tmp_path, entry):
    file, folder = tmp_path / "file", tmp_path / "folder"
    if entry == "manage.py":
        # Any manage.py command (runservice, runserver, promoter) goes through main().
        args = [sys.executable, "manage.py", "shell", "-c",
                f"import os; open({str(file)!r}, 'w').close(); os.mkdir({str(folder)!r})"]
    else:  # celery -A intelgraph worker|beat|flower import the app first
        args = [sys.executable, "-c", f"import intelgraph; {WRITE}", str(file), str(folder)]
    run_with_umask_022(args)
    assert mode(file) == 0o600 and mode(folder) == 0o700


def test_the_log_handler_makes_a_private_folder_and_file(tmp_path, permissive_umask):
    path = tmp_path / "logs" / "combined.log"
    handler = CombinedLogHandler(str(path), maxBytes=200, backupCount=2)
    try:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "x" * 150, None, None)
        handler.emit(record)
        handler.emit(record)  # rotates: the new file is private too
    finally:
        handler.close()
    assert mode(path.parent) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["combined.log", "combined.log.1"]
    assert all(mode(p) == 0o600 for p in path.parent.iterdir())


def test_secret_files_are_created_0600_never_chmodded(tmp_path, permissive_umask, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a secret file must be created with its mode, not chmod-ed")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(Path, "chmod", refuse)
    path = tmp_path / "secret"
    assert runservice.secret_file(path, lambda: "first") == "first"
    assert mode(path) == 0o600
    assert runservice.secret_file(path, lambda: "second") == "first"  # kept, not remade


def test_private_dirs_are_created_0700_and_older_ones_tightened(tmp_path, permissive_umask):
    fresh = runservice.private_dir(tmp_path / "var")
    old = tmp_path / "logs"
    old.mkdir(mode=0o755)
    runservice.private_dir(old)
    assert mode(fresh) == 0o700 and mode(old) == 0o700


def test_make_run_generates_a_strong_flower_credential(tmp_path, monkeypatch, permissive_umask):
    monkeypatch.setattr(runservice, "VAR_DIR", tmp_path)
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    command = runservice.Command()
    value = command._flower_auth()
    assert basic_auth_problem(value) is None and value.startswith("admin:")
    assert mode(tmp_path / "flower_basic_auth") == 0o600
    assert command._flower_auth() == value  # the same on the next run


@pytest.mark.parametrize("given", ["user:password", "admin:admin", "ops:", ":x" * 8])
def test_make_run_refuses_a_weak_flower_credential(monkeypatch, given):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", given)
    with pytest.raises(CommandError, match="FLOWER_BASIC_AUTH"):
        runservice.Command()._flower_auth()
