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


def test_any_backup_asset_is_any_of_the_kinds_assets():
    from airflow.sdk.definitions.asset import AssetAny

    either = names.any_backup_asset()
    assert isinstance(either, AssetAny)  # "any", never "all": each new backup triggers on its own
    assert [a.uri for a in either.objects] == [names.asset_uri(k) for k in names.BACKUP_KINDS]
