"""gravitypm_log_rotation run for real (dag.test) against the local stack: moto S3, the Slack
receiver, and the dev production host whose log writer reopens on `restart logging`."""

from __future__ import annotations

import gzip
import hashlib
import re
import sys
import time
import uuid
from pathlib import Path

import pytest

from gravitypm_ops.log_rotation.state import STATE_NAME
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.verification.verify import verify_backup

DAG_ID = "gravitypm_log_rotation"
FORCE = {"run_conf": {"force": True}}


@pytest.fixture
def prefix() -> str:
    """A vault prefix of this test's own, so counts of logs backups are exact."""
    return f"logrot-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def logs(tmp_path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d


def overrides(prefix: str, logs: Path | None = None, **more) -> dict:
    return {"vault_prefix": prefix, **({"logs_dir": str(logs)} if logs else {}), **more}


def vault_of(stack, prefix: str) -> Vault:
    return Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rotates_ships_and_the_backup_verifies(run_dag, stack, prefix, logs, slack):
    token = uuid.uuid4().hex
    (logs / "app.log").write_text("".join(f"{token} INFO request id={i}\n" for i in range(5000)))
    (logs / "access.log").write_text(f"{token} GET /api/projects 200\n")
    (logs / "mongodb.log").write_text("")

    result = run_dag(DAG_ID, overrides(prefix, logs), **FORCE)

    assert result.state == "success", result.task_states
    assert result.task_states == {"check_disk_space": "success", "rotate_and_ship": "success",
                                  "announce_backup": "success", "apply_retention": "success"}
    report = result.xcom("rotate_and_ship")
    assert sorted(r["log"] for r in report["rotated"]) == ["access.log", "app.log"]
    assert report["skipped"]["mongodb.log"] == "empty (notifempty)"
    assert report["postrotate"]["status"] == "ok" and "host_ctl.py" in report["postrotate"]["argv"]
    assert (logs / "app.log").stat().st_size == 0 and (logs / "app.log").stat().st_mode & 0o777 == 0o644
    local = {p.name: sha(p) for p in logs.glob("*.gz")}
    assert set(local) == {"app.log.1.gz", "access.log.1.gz"}

    vault = vault_of(stack, prefix)
    [manifest] = vault.list_backups("logs")
    assert result.xcom("announce_backup")["backup_id"] == manifest["backup_id"]
    # the manifest lists each rotated file by source name and sha256 (that is how re-shipping is avoided)
    assert {(e["log"], e["file"], e["sha256"]) for e in manifest["content"]["logs"]} == {
        ("app.log", "app.log.1.gz", local["app.log.1.gz"]), ("access.log", "access.log.1.gz", local["access.log.1.gz"])}
    with vault.open_artifact(manifest, next(e["artifact"] for e in manifest["content"]["logs"]
                                           if e["log"] == "app.log")) as body:
        assert gzip.decompress(body.read()).decode().count(token) == 5000

    record = verify_backup(vault, manifest)
    assert record["status"] == "passed", record
    assert [c["name"] for c in record["checks"]] == ["artifacts", "gzip"]
    assert vault.latest("logs")["backup_id"] == manifest["backup_id"]  # now counts for the freshness audit


def test_verification_dag_verifies_logs_backups_for_the_freshness_audit(run_dag, prefix, logs):
    (logs / "app.log").write_text(f"{uuid.uuid4()} INFO shipped and verified\n")
    assert run_dag(DAG_ID, overrides(prefix, logs), **FORCE).state == "success"

    verification = run_dag("gravitypm_backup_verification", overrides(prefix, logs))

    assert verification.task_states["verify_backups"] == "success", verification.task_states
    [checked] = verification.xcom("verify_backups")["verified"]
    assert (checked["kind"], checked["status"], checked["failed_checks"]) == ("logs", "passed", [])
    audit = verification.xcom("audit_freshness", key="check")  # db/fs/config have no backups in this prefix
    assert next(f for f in audit["findings"] if f["subject"] == "logs")["status"] == "ok"


def test_a_file_already_shipped_is_not_shipped_twice(run_dag, stack, prefix, logs):
    vault = vault_of(stack, prefix)

    def shipped() -> list[str]:
        return [e["sha256"] for m in vault.list_backups("logs") for e in m["content"]["logs"]]

    (logs / "app.log").write_text(f"first {uuid.uuid4()}\n")
    assert run_dag(DAG_ID, overrides(prefix, logs), **FORCE).state == "success"
    assert len(shipped()) == 1

    (logs / "app.log").write_text(f"second {uuid.uuid4()}\n")
    second = run_dag(DAG_ID, overrides(prefix, logs), **FORCE)
    assert second.state == "success"
    assert second.xcom("rotate_and_ship")["shipped"]["files"] == 1  # app.log.1.gz only; .2.gz was shipped
    assert len(shipped()) == 2 == len(set(shipped()))

    # The host's ledger is gone (new worker, state wiped): the vault's manifests still say what it has.
    (logs / STATE_NAME).unlink()
    (logs / "app.log").write_text(f"third {uuid.uuid4()}\n")
    third = run_dag(DAG_ID, overrides(prefix, logs), **FORCE)
    assert third.state == "success" and third.xcom("rotate_and_ship")["shipped"]["files"] == 1
    assert len(shipped()) == 3 == len(set(shipped()))
    assert set(shipped()) == {sha(p) for p in logs.glob("app.log.*.gz")}

    # Nothing due, nothing new: no backup, and no Asset event (verification is not woken for nothing).
    quiet = run_dag(DAG_ID, overrides(prefix, logs))
    assert quiet.state == "success"
    assert quiet.task_states["announce_backup"] == "skipped"
    assert len(vault.list_backups("logs")) == 3


def test_retention_runs_after_the_shipping_with_the_logs_policy(run_dag, stack, prefix, logs):
    (logs / "app.log").write_text(f"first {uuid.uuid4()}\n")
    assert run_dag(DAG_ID, overrides(prefix, logs), **FORCE).state == "success"
    (logs / "app.log").write_text(f"second {uuid.uuid4()}\n")
    keep_one = overrides(prefix, logs, retention={"logs": {"last": 1}})

    second = run_dag(DAG_ID, keep_one, run_conf={"force": True, "retention_dry_run": True})

    assert second.task_states["apply_retention"] == "success", second.task_states
    first_id, second_id = sorted(m["backup_id"] for m in vault_of(stack, prefix).list_backups("logs"))
    report = second.xcom("apply_retention")
    assert (report["kind"], report["dry_run"], report["policy"]["last"]) == ("logs", True, 1)
    # it ran after this run's shipping: the backup just shipped is the newest it kept
    assert [k["backup_id"] for k in report["kept"]] == [second_id]
    assert report["removed"] == [first_id]
    assert len(vault_of(stack, prefix).list_backups("logs")) == 2  # a dry run deletes nothing


def test_postrotate_failure_fails_the_run_and_loses_nothing(run_dag, stack, prefix, logs, slack):
    (logs / "app.log").write_text("kept safe\n")
    failing = [sys.executable, "-c", "import sys; sys.exit('no such service: logging')"]

    result = run_dag(DAG_ID, overrides(prefix, logs, service_commands={"restart_logging": failing}), **FORCE)

    assert result.state == "failed"
    assert result.task_states["rotate_and_ship"] == "failed"
    assert result.task_states["announce_backup"] == "upstream_failed"
    assert (logs / "app.log.1").read_text() == "kept safe\n"  # not compressed, not removed: writer may be on it
    assert vault_of(stack, prefix).list_backups("logs") == []
    alert = next(t for t in slack.texts() if "rotate_and_ship" in t)
    assert "[Warning] gravitypm_log_rotation failed" in alert and "restart_logging" in alert
    assert "no such service: logging" in alert

    # The next run restarts logging first (now working), then compresses and ships it.
    again = run_dag(DAG_ID, overrides(prefix, logs))
    assert again.state == "success", again.task_states
    assert gzip.decompress((logs / "app.log.1.gz").read_bytes()) == b"kept safe\n"
    assert len(vault_of(stack, prefix).list_backups("logs")) == 1


def test_unknown_create_user_fails_before_any_file_is_touched(run_dag, prefix, logs, slack):
    (logs / "app.log").write_text("untouched\n")
    run_dag(DAG_ID, overrides(prefix, logs))  # records the log (first sight)
    before = {p.name: p.read_bytes() for p in logs.iterdir() if p.name != STATE_NAME}

    bad = {"create": {"mode": "0644", "owner": "gravitypm-nobody", "group": "www-data"}}
    result = run_dag(DAG_ID, overrides(prefix, logs, log_rotation=bad), **FORCE)

    assert result.task_states["rotate_and_ship"] == "failed"
    assert {p.name: p.read_bytes() for p in logs.iterdir() if p.name != STATE_NAME} == before
    assert any("user 'gravitypm-nobody' does not exist on this host; nothing was rotated" in t for t in slack.texts())


def test_disk_guard_says_so_in_slack(run_dag, prefix, logs, slack):
    (logs / "app.log").write_text("x\n")
    calm = run_dag(DAG_ID, overrides(prefix, logs, disk_min_free_percent=0.001))  # warn only when > 99.999 % used
    assert calm.task_states["check_disk_space"] == "success"
    assert calm.xcom("check_disk_space")["status"] == "ok"
    assert not any("logs filesystem" in t for t in slack.texts())

    # A threshold this disk is over (> 1 % used), measured for real on logs_dir's filesystem.
    full = run_dag(DAG_ID, overrides(prefix, logs, disk_min_free_percent=99))
    assert full.task_states["check_disk_space"] == "success"  # a warning: rotation still runs
    assert full.xcom("check_disk_space")["status"] == "breach"
    [alert] = [t for t in slack.texts() if "logs filesystem" in t]
    assert "[Warning] gravitypm_log_rotation: the logs filesystem is over 1% used" in alert
    assert str(logs) in alert


def test_live_host_writer_loses_and_duplicates_no_line(run_dag, stack, prefix):
    """The dev production host keeps app.log open and appends `id=N` lines; `restart logging`
    (dev/host_ctl.py, the stack's service_commands) makes it reopen — the logrotate contract."""
    logs = stack.app_root / "logs"
    ids = lambda text: [int(m) for m in re.findall(r" id=(\d+) ", text)]  # noqa: E731

    def wait_for_lines(path: Path, n: int) -> str:
        deadline = time.monotonic() + 15
        while len(ids(text := path.read_text())) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        return text

    wait_for_lines(logs / "app.log", 2)
    for p in logs.glob("app.log.*"):  # earlier rotations of this session's host, if any
        p.unlink()
    result = run_dag(DAG_ID, overrides(prefix), **FORCE)
    assert result.state == "success", result.task_states
    rotated = ids(gzip.decompress((logs / "app.log.1.gz").read_bytes()).decode())
    current = ids(wait_for_lines(logs / "app.log", 2))  # the writer goes on in the new file
    assert rotated and current
    # Ids skip while other tests had the app stopped (it does not log then); across the rotation the
    # next line must be the very next id: nothing lost, nothing written twice.
    assert rotated + current == sorted(set(rotated + current))
    assert current[0] == rotated[-1] + 1
