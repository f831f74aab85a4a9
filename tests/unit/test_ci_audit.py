""".ci/audit.py's verdicts, from pip-audit JSON reports shaped as pip-audit 2.10 writes them.

The audit itself needs the vulnerability service (see docs/security.md for
what answers from here); these cases pin down what each answer leads to.
"""

from __future__ import annotations

import importlib.util

from settings.environment import BASE_DIR

spec = importlib.util.spec_from_file_location("ci_audit", BASE_DIR / ".ci" / "audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

CANARY_VULNERABLE = {"dependencies": [{"name": "django", "version": "3.2.0", "vulns": [
    {"id": "PYSEC-2021-98", "fix_versions": ["3.2.1"], "aliases": [], "description": "x"}]}],
    "fixes": []}
CANARY_UNAUDITED = {"dependencies": [{"name": "django", "skip_reason":
    "Dependency not found on PyPI and could not be audited: django (3.2.0)"}], "fixes": []}
CLEAN = {"dependencies": [{"name": "celery", "version": "5.7.0", "vulns": []},
                          {"name": "kombu", "version": "5.7.0", "vulns": []}], "fixes": []}


def test_a_known_vulnerability_fails_the_audit():
    report = {"dependencies": [*CLEAN["dependencies"], {"name": "whitenoise", "version": "6.12.0",
              "vulns": [{"id": "GHSA-xxxx", "fix_versions": ["6.12.1"]}]}]}
    status, line = audit.verdict(CANARY_VULNERABLE, "", report, "")
    assert status == 1 and "whitenoise 6.12.0: GHSA-xxxx (fixed in 6.12.1)" in line


def test_a_clean_audit_passes_and_names_what_it_could_not_check():
    assert audit.verdict(CANARY_VULNERABLE, "", CLEAN, "") == (
        0, "pip-audit: no known vulnerability in 2 pinned packages")
    partial = {"dependencies": [*CLEAN["dependencies"],
                                {"name": "honcho", "skip_reason": "not found"}]}
    status, line = audit.verdict(CANARY_VULNERABLE, "", partial, "")
    assert status == 0 and "1 could not be audited: honcho" in line


def test_an_unreachable_service_is_a_printed_skip_not_a_green_audit():
    status, line = audit.verdict(CANARY_UNAUDITED, "", None, "")
    assert status == 0 and line.startswith("SKIPPED pip-audit")
    status, line = audit.verdict(None, "requests.exceptions.ConnectionError: Max retries "
                                 "exceeded (NameResolutionError)", None, "")
    assert status == 0 and line.startswith("SKIPPED pip-audit")


def test_a_service_blind_to_the_canary_is_not_trusted():
    blind = {"dependencies": [{"name": "django", "version": "3.2.0", "vulns": []}]}
    status, line = audit.verdict(blind, "", CLEAN, "")
    assert status == 1 and "not trusted" in line
    assert audit.verdict(None, "Traceback: ValueError: bad option", None, "")[0] == 1
