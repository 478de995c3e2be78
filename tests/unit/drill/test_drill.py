"""The drill's pure parts: isolation guards and the RTO / RPO judgement."""

from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.config import parse_config
from gravitypm_ops.drill import drill as drill_drill
from gravitypm_ops.drill import report as drill_report

DAG_ID = "gravitypm_dr_drill"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def test_scratch_dir_guard_follows_symlinks_into_production(tmp_path):
    app_root = tmp_path / "opt" / "production"
    (app_root / "uploads").mkdir(parents=True)
    cfg = parse_config({"app_root": str(app_root)})
    (tmp_path / "innocent").symlink_to(app_root / "uploads")

    with pytest.raises(drill_drill.DrillRefused, match="inside the production tree"):
        drill_drill.check_scratch_dir(str(tmp_path / "innocent"), cfg)
    with pytest.raises(drill_drill.DrillRefused, match="resolves to /"):
        drill_drill.check_scratch_dir("/", cfg)
    with pytest.raises(drill_drill.DrillRefused, match="absolute"):
        drill_drill.check_scratch_dir("relative/dir", cfg)
    other_root = tmp_path / "srv" / "restore"
    cfg = parse_config({"app_root": str(app_root), "restore_allowed_roots": [str(other_root)]})
    with pytest.raises(drill_drill.DrillRefused, match="inside the production tree"):
        drill_drill.check_scratch_dir(str(other_root / "x"), cfg)
    assert drill_drill.check_scratch_dir(str(tmp_path / "scratch"), cfg) == str(tmp_path / "scratch")
    assert drill_drill.check_scratch_dir(None, cfg) is None


def test_judge_fails_a_slow_component_the_total_and_a_component_that_never_ran():
    plan = {
        "schema": 1, "drill_id": "d", "dag_id": DAG_ID, "run_id": "r", "started": T0.isoformat(), "source": "primary",
        "as_of": None, "rpo_reference": T0.isoformat(), "components": ["db", "fs"], "cleanup": True,
        "scratch_database": "gravitypm_scratch_drill", "scratch_dir": None,
        "targets": {"rto_minutes": 1.0, "rpo_hours": {"db": 7.0, "fs": 26.0}},
        "backups": {k: {"backup_id": f"{k}-1", "finished": T0.isoformat(), "verified": True, "bytes": 1,
                        "documents": None, "files": None, "content_bytes": None, "rpo_hours": 2.0} for k in ("db", "fs")},
    }
    slow = {"status": "passed", "detail": "ok", "target": ["x"], "kept": False, "seconds": 90.0,
            "started": T0.isoformat(), "finished": (T0 + timedelta(seconds=90)).isoformat()}

    report = drill_drill.judge(plan, {"db": slow, "fs": None}, T0 + timedelta(minutes=2))

    assert report["verdict"] == "failed"
    assert report["failures"] == ["db: RTO 1.5 min > target 1 min", "fs: restore did not run",
                                  "total RTO 1.5 min > target 1 min"]
    assert report["components"]["db"]["rpo_ok"] and not report["components"]["db"]["rto_ok"]
    assert report["components"]["fs"]["status"] == "failed" and report["total"]["rto_ok"] is False
    markdown = drill_report.render_markdown(report)
    assert "# DR drill d: FAILED" in markdown and "**MISSED**" in markdown and "fs: restore did not run" in markdown


@pytest.mark.parametrize("name", ["admin", "local", "config", "Admin"])
def test_scratch_database_is_never_a_reserved_mongodb_database(name):
    cfg = type("Cfg", (), {"scratch_database_prefix": "", "mongo_databases": ("gravitypm_production",)})()
    with pytest.raises(drill_drill.DrillRefused, match="reserved"):
        drill_drill.check_scratch_database(name, cfg)


def test_scratch_database_is_never_production_whatever_the_case():
    cfg = type("Cfg", (), {"scratch_database_prefix": "gravitypm_", "mongo_databases": ("gravitypm_production",)})()
    with pytest.raises(drill_drill.DrillRefused, match="production"):
        drill_drill.check_scratch_database("Gravitypm_Production", cfg)


def test_scratch_names_derived_per_database_are_checked_too():
    cfg = type("Cfg", (), {"scratch_database_prefix": "gravitypm_", "mongo_databases": ("gravitypm_drill_prod",)})()
    drill_drill.check_scratch_names("gravitypm_drill", ["only"], cfg)  # one database: the name itself
    with pytest.raises(drill_drill.DrillRefused, match="production"):
        drill_drill.check_scratch_names("gravitypm_drill", ["PROD", "other"], cfg)
