import pytest

from gravitypm_ops import names


def test_backup_assets_have_fixed_uris_without_the_bucket():
    assert [names.backup_asset(k).uri for k in names.BACKUP_KINDS] == [
        "gravitypm://vault/db", "gravitypm://vault/fs", "gravitypm://vault/config", "gravitypm://vault/logs"
    ]
    assert names.backup_asset("db").name == "gravitypm_db_backup"
    with pytest.raises(ValueError, match="unknown backup kind"):
        names.asset_uri("database")


def test_schedule_timezone_defaults_to_utc(monkeypatch):
    monkeypatch.delenv(names.TIMEZONE_ENV, raising=False)
    assert names.schedule_timezone() == "UTC"
    monkeypatch.setenv(names.TIMEZONE_ENV, "America/New_York")
    assert names.schedule_timezone() == "America/New_York"
