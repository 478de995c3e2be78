"""Security-updates evidence: pending `*-security` packages from the configured command."""

from __future__ import annotations

import logging
import re
import subprocess
from datetime import datetime

from gravitypm_ops.checklists.evidence.base import FAILED, PASSED, Evidence
from gravitypm_ops.config.checklists import settings_of
from gravitypm_ops.redact import scrub

log = logging.getLogger(__name__)


# `apt list --upgradable`: "openssl/bookworm-security 3.0.15-1~deb12u1 amd64 [upgradable from: 3.0.14-1~deb12u2]"
_APT = re.compile(r"^(?P<package>[^/\s]+)/(?P<suites>\S+) (?P<version>\S+) (?P<arch>\S+)")


def parse_upgradable(output: str) -> list[dict]:
    """Pending upgrades from `apt list --upgradable` output; `security` when a suite is *-security."""
    pending = []
    for line in output.splitlines():
        match = _APT.match(line.strip())
        if match and "upgradable" in line:
            suites = match["suites"].split(",")
            pending.append({"package": match["package"], "version": match["version"],
                            "security": any("security" in s for s in suites)})
    return pending


def judge_updates(pending: list[dict]) -> Evidence:
    security = [p["package"] for p in pending if p["security"]]
    data = {"pending": len(pending), "security": len(security), "security_packages": security[:50]}
    if security:
        return Evidence(FAILED, f"{len(security)} security update(s) pending: {', '.join(security[:10])}"
                        + (" …" if len(security) > 10 else ""), data)
    return Evidence(PASSED, f"no security update pending ({len(pending)} other update(s) available)", data)


def security_updates(cfg, options: dict, now: datetime) -> Evidence:
    """The configured command (default `apt list --upgradable`) lists no pending security update."""
    settings = settings_of(cfg)
    argv = settings["security_updates_command"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=settings["security_updates_timeout_seconds"])
    except (OSError, subprocess.TimeoutExpired) as err:
        return Evidence(FAILED, f"could not run {argv[0]}: {scrub(str(err))}", {"command": argv[0]})
    if done.returncode != 0:
        tail = scrub(done.stderr.strip()[-500:])
        return Evidence(FAILED, f"{argv[0]} exited {done.returncode}: {tail}", {"command": argv[0]})
    evidence = judge_updates(parse_upgradable(done.stdout))
    evidence.data["command"] = scrub(" ".join(argv))  # it goes into XCom and the audit record
    return evidence
