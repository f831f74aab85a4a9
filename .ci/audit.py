"""pip-audit over the pinned requirements: fails on a known vulnerability (issue 13).

pip-audit asks the package index for each pinned release's advisories (its
default service). Where that answer is missing, pip-audit marks the package
"could not be audited" and still exits 0, so a plain run can look green having
checked nothing. This script reads pip-audit's JSON and tells the cases apart:

* a canary pin with published advisories (``CANARY``) is audited first; when
  it cannot be audited, the service is unreachable from here: SKIPPED, exit 0;
  when it comes back clean, the service cannot be trusted: exit 1;
* then requirements.txt (hashed, so pip-audit needs no resolver): any known
  vulnerability fails (exit 1); packages it could not audit are listed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT = str(Path(sys.executable).with_name("pip-audit"))
#: Django 3.2.0 has many published advisories: an audit that finds none is blind.
CANARY = "django==3.2.0"
UNREACHABLE = ("ConnectionError", "NameResolutionError", "Max retries exceeded", "timed out")


def run_audit(requirements: Path, *options: str) -> tuple[dict | None, str]:
    """pip-audit's JSON report (None when it did not produce one) and its stderr."""
    out = subprocess.run([PIP_AUDIT, "-r", str(requirements), "--disable-pip", *options,
                          "--progress-spinner", "off", "--format", "json"],
                         capture_output=True, text=True, timeout=600)
    try:
        return json.loads(out.stdout), out.stderr
    except ValueError:
        return None, out.stderr


def classify(report: dict) -> tuple[list[str], list[str]]:
    """(vulnerabilities as "name version: id (fix …)", packages that could not be audited)."""
    found, unaudited = [], []
    for dep in report.get("dependencies", []):
        if dep.get("skip_reason"):
            unaudited.append(dep["name"])
        for vuln in dep.get("vulns") or []:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none"
            found.append(f"{dep['name']} {dep.get('version', '?')}: {vuln['id']} (fixed in {fixes})")
    return found, unaudited


def verdict(canary: dict | None, canary_err: str, report: dict | None,
            report_err: str) -> tuple[int, str]:
    """Exit status and the line to print, from the canary's and the real audit's results."""
    if canary is None:
        if any(word in canary_err for word in UNREACHABLE):
            return 0, "SKIPPED pip-audit: the vulnerability service is unreachable from here"
        return 1, f"pip-audit failed on the canary: {canary_err.strip()[-500:]}"
    canary_vulns, canary_unaudited = classify(canary)
    if canary_unaudited:
        return 0, ("SKIPPED pip-audit: the vulnerability service has no answer for pinned "
                   f"releases here (the canary {CANARY} could not be audited)")
    if not canary_vulns:
        return 1, f"pip-audit found nothing in {CANARY}, which has known advisories: not trusted"
    if report is None:
        return 1, f"pip-audit failed on requirements.txt: {report_err.strip()[-500:]}"
    vulns, unaudited = classify(report)
    if vulns:
        return 1, "known vulnerabilities in requirements.txt:\n  " + "\n  ".join(vulns)
    note = f" ({len(unaudited)} could not be audited: {', '.join(unaudited)})" if unaudited else ""
    audited = len(report.get("dependencies", [])) - len(unaudited)
    return 0, f"pip-audit: no known vulnerability in {audited} pinned packages{note}"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        canary_file = Path(tmp) / "canary.txt"
        canary_file.write_text(CANARY + "\n")
        canary, canary_err = run_audit(canary_file, "--no-deps")
    report, report_err = (None, "")
    if canary is not None and canary.get("dependencies") and not classify(canary)[1]:
        report, report_err = run_audit(ROOT / "requirements.txt", "--require-hashes")
    status, line = verdict(canary, canary_err, report, report_err)
    print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
