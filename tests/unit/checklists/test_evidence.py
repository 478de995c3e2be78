"""Evidence collectors on local inputs: access logs in a folder, the security-updates command."""

import sys
from datetime import UTC, datetime

from gravitypm_ops.checklists.evidence import registry as evidence_registry
from gravitypm_ops.config import parse_config
from tests.access_logs import seed_logs


def test_access_logs_read_current_and_rotated_files_in_the_window(tmp_path):
    seed_logs(tmp_path / "logs", attack=25, now=datetime.now(UTC))
    cfg = parse_config({"app_root": str(tmp_path), "logs_dir": str(tmp_path / "logs")})
    result = evidence_registry.collect("access_logs", cfg, {"window_hours": 24})
    assert result.data["files"] == ["access.log.1.gz", "access.log"]  # the 10-day-old file is not read
    assert (result.data["requests"], result.data["401"], result.data["403"], result.data["5xx"]) == (430, 25, 3, 2)
    assert result.outcome == "failed" and "failed-login spike: 203.0.113.66 25×" in result.summary
    assert result.data["top_failed_login_clients"] == {"203.0.113.66": 25, "198.51.100.4": 3}

    seed_logs(tmp_path / "quiet", attack=0, now=datetime.now(UTC))
    cfg = parse_config({"app_root": str(tmp_path), "logs_dir": str(tmp_path / "quiet")})
    assert evidence_registry.collect("access_logs", cfg, {"window_hours": 24}).outcome == "passed"
    cfg = parse_config({"app_root": str(tmp_path), "logs_dir": str(tmp_path / "none")})
    missing = evidence_registry.collect("access_logs", cfg)
    assert missing.outcome == "failed" and "no access log" in missing.summary


def command_printing(text: str, code: int = 0, stderr: str = "") -> list[str]:
    script = f"import sys; sys.stdout.write({text!r}); sys.stderr.write({stderr!r}); sys.exit({code})"
    return [sys.executable, "-c", script]


def test_security_updates_from_the_configured_command():
    apt = ("Listing...\nopenssl/stable-security 3.0.15 amd64 [upgradable from: 3.0.14]\n"
           "tzdata/stable-updates 2025b all [upgradable from: 2025a]\n")
    cfg = parse_config({"checklists": {"security_updates_command": command_printing(apt)}})
    result = evidence_registry.collect("security_updates", cfg)
    assert result.outcome == "failed" and result.data["security_packages"] == ["openssl"]
    cfg = parse_config({"checklists": {"security_updates_command": [*command_printing("Listing...\n"),
                                                                      "--password=hunter2"]}})
    quiet = evidence_registry.collect("security_updates", cfg)
    assert quiet.outcome == "passed" and "hunter2" not in quiet.data["command"]
    cfg = parse_config({"checklists": {"security_updates_command": command_printing(
        "", 100, "E: Could not open lock file, password=hunter2")}})
    broken = evidence_registry.collect("security_updates", cfg)
    assert broken.outcome == "failed" and "exited 100" in broken.summary and "hunter2" not in broken.summary
    cfg = parse_config({"checklists": {"security_updates_command": ["/nonexistent/apt", "list"]}})
    assert "could not run" in evidence_registry.collect("security_updates", cfg).summary
