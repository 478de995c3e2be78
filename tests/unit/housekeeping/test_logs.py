"""Task-log retention in a real directory tree: what goes, what stays, and that it never leaves the folder."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gravitypm_ops.housekeeping.logs import apply_log_retention, folder_bytes, judge_lifecycle, split_s3_url

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=30)


def write(path: Path, text: str, age_days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    moment = (NOW - timedelta(days=age_days)).timestamp()
    os.utime(path, (moment, moment))
    return path


def tree(tmp_path: Path) -> dict[str, Path]:
    root, outside = tmp_path / "logs", tmp_path / "outside"
    files = {
        "old": write(root / "dag_id=a/run_id=r1/task_id=t/attempt=1.log", "old run\n", 45),
        "old_mapped": write(root / "dag_id=a/run_id=r1/task_id=m/map_index=0/attempt=2.log", "old\n", 31),
        "new": write(root / "dag_id=a/run_id=r2/task_id=t/attempt=1.log", "recent\n", 2),
        "old_not_a_log": write(root / "dag_id=a/run_id=r1/task_id=t/notes.txt", "kept\n", 90),
        "scheduler": write(root / "scheduler/2026-01-01/x.log", "not a task log\n", 300),
        "outside": write(outside / "dag_id=z/run_id=r/task_id=t/attempt=1.log", "outside\n", 300),
    }
    (root / "dag_id=linked").symlink_to(outside / "dag_id=z", target_is_directory=True)
    (root / "dag_id=a/run_id=r2/task_id=t/attempt=9.log").symlink_to(files["outside"])
    os.utime(root / "dag_id=a/run_id=r2/task_id=t/attempt=9.log", (0, 0), follow_symlinks=False)
    return {"root": root, **files}


def test_old_task_logs_go_recent_and_other_files_stay_and_symlinks_are_not_followed(tmp_path):
    t = tree(tmp_path)
    before = folder_bytes(t["root"])
    report = apply_log_retention(t["root"], CUTOFF, dry_run=False)
    assert sorted(report["paths"]) == ["dag_id=a/run_id=r1/task_id=m/map_index=0/attempt=2.log",
                                       "dag_id=a/run_id=r1/task_id=t/attempt=1.log"]
    assert not t["old"].exists() and not t["old_mapped"].exists()
    assert t["new"].exists() and t["old_not_a_log"].exists() and t["scheduler"].exists() and t["outside"].exists()
    assert (t["root"] / "dag_id=linked").is_symlink() and (t["root"] / "dag_id=a/run_id=r2/task_id=t/attempt=9.log"
                                                            ).is_symlink()
    assert not (t["root"] / "dag_id=a/run_id=r1/task_id=m").exists()  # emptied directories go
    assert (t["root"] / "dag_id=a/run_id=r1/task_id=t").is_dir()  # still holds notes.txt
    assert report["files"] == 2 and report["bytes"] == len("old run\n") + len("old\n")
    assert report["before_bytes"] == before and report["after_bytes"] == before - report["bytes"]
    assert report["errors"] == []


def test_a_dry_run_lists_and_changes_nothing(tmp_path):
    t = tree(tmp_path)
    listing = sorted(str(p) for p in t["root"].rglob("*"))
    report = apply_log_retention(t["root"], CUTOFF, dry_run=True)
    assert report["files"] == 2 and report["dry_run"] and report["dirs_removed"] == 0
    assert report["after_bytes"] == report["before_bytes"]
    assert sorted(str(p) for p in t["root"].rglob("*")) == listing


def test_a_missing_folder_is_reported_not_created(tmp_path):
    report = apply_log_retention(tmp_path / "nope", CUTOFF, dry_run=False)
    assert report["exists"] is False and report["files"] == 0 and not (tmp_path / "nope").exists()


def test_split_s3_url():
    assert split_s3_url("s3://logs-bucket/airflow/logs/") == ("logs-bucket", "airflow/logs/")
    assert split_s3_url("s3://logs-bucket") == ("logs-bucket", "")


def test_lifecycle_rule_must_be_enabled_cover_the_prefix_and_expire():
    expire = {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "airflow/"}, "Expiration": {"Days": 30}}
    assert judge_lifecycle([expire], "airflow/logs/", 30) == {
        "ok": True, "days": 30, "detail": "lifecycle rule expires remote task logs after 30 days"}
    assert judge_lifecycle([{**expire, "Status": "Disabled"}], "airflow/logs/", 30)["ok"] is False
    assert judge_lifecycle([{**expire, "Filter": {"Prefix": "other/"}}], "airflow/logs/", 30)["ok"] is False
    no_expiry = {"Status": "Enabled", "Filter": {}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
    verdict = judge_lifecycle([no_expiry], "airflow/logs/", 30)
    assert verdict["ok"] is False and "kept forever" in verdict["detail"]
    longer = judge_lifecycle([{**expire, "Filter": {"And": {"Prefix": "airflow/"}}, "Expiration": {"Days": 60}}],
                             "airflow/logs/", 30)
    assert longer["ok"] is True and "longer than housekeeping.log_keep_days 30" in longer["detail"]
