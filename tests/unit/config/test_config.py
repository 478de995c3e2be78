import json

import pytest

from gravitypm_ops.config import ConfigError, OpsConfig, parse_config, parse_config_json


def test_defaults_are_the_runbooks_numbers():
    cfg = parse_config(None)
    assert cfg.app_root == "/opt/gravitypm/production"
    assert cfg.logs_path == "/opt/gravitypm/production/logs"
    assert cfg.mongo_databases == ("gravitypm_production",)
    assert cfg.disk_min_free_percent == 20  # "Check disk space (> 20% free)"
    assert cfg.memory_max_used_percent == 85  # "Memory Usage: < 85%"
    assert cfg.freshness_hours == {"db": 7, "fs": 26, "config": 26, "logs": 26}
    assert cfg.health_urls["application"] == "https://api.gravitypm.com/health"
    assert cfg.health_urls["database"] == "https://api.gravitypm.com/health/db"
    assert cfg.health_urls["cache"] == "https://api.gravitypm.com/health/redis"
    assert "/opt/gravitypm/production/docker-compose.production.yml" in cfg.config_files
    assert "/opt/gravitypm/production/.env" in cfg.config_files


def test_missing_or_empty_variable_means_defaults():
    assert parse_config_json(None) == OpsConfig()
    assert parse_config_json("  ") == OpsConfig()


def test_overrides_apply_and_derived_paths_follow_app_root():
    cfg = parse_config_json(json.dumps({"app_root": "/srv/gpm", "vault_bucket": "my-vault", "freshness_hours": {"db": 3}}))
    assert cfg.vault_bucket == "my-vault"
    assert cfg.logs_path == "/srv/gpm/logs"
    assert cfg.config_files[0] == "/srv/gpm/docker-compose.production.yml"
    assert cfg.disk_paths == ("/srv/gpm", "/srv/gpm/logs")
    # Overriding one kind keeps the runbook value of the others.
    assert cfg.freshness_hours == {"db": 3, "fs": 26, "config": 26, "logs": 26}


def test_explicit_logs_dir_wins():
    assert parse_config({"logs_dir": "/var/log/gpm"}).logs_path == "/var/log/gpm"


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"vault_buckt": "x"}, "vault_buckt"),
        ({"app_root": "relative/path"}, "app_root"),
        ({"vault_bucket": "Has Spaces"}, "vault_bucket"),
        ({"vault_prefix": "../escape"}, "vault_prefix"),
        ({"mongo_databases": "gravitypm_production"}, "mongo_databases"),
        ({"mongo_databases": []}, "mongo_databases"),
        ({"health_urls": {"api": "ftp://x"}}, "health_urls"),
        ({"health_urls": ["https://x/health"]}, "health_urls"),
        ({"disk_min_free_percent": 120}, "disk_min_free_percent"),
        ({"disk_min_free_percent": True}, "disk_min_free_percent"),
        ({"memory_max_used_percent": "85"}, "memory_max_used_percent"),
        ({"freshness_hours": {"database": 7}}, "freshness_hours"),
        ({"freshness_hours": {"db": -1}}, "freshness_hours"),
        ({"config_paths": ["../etc/passwd"]}, "config_paths"),
    ],
)
def test_bad_values_fail_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=repr(key)):
        parse_config(overrides)


def test_not_an_object_or_not_json_is_a_clear_error():
    with pytest.raises(ConfigError, match="JSON object"):
        parse_config_json("[1, 2]")
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_config_json("{vault_bucket: x}")


def test_unknown_key_lists_the_known_keys_sorted():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'vault_buckt'; known keys: alerts, app_root, checklists, ") as err:
        parse_config({"vault_buckt": "x"})
    assert str(err.value).endswith("vault_bucket, vault_prefix")


def test_per_kind_errors_name_the_kind_under_the_key():
    with pytest.raises(ConfigError, match=r"key 'freshness_hours' freshness_hours\.db must be a number > 0"):
        parse_config({"freshness_hours": {"db": 0}})
    with pytest.raises(ConfigError, match=r"unknown kind\(s\) 'database'; known kinds: db, fs, config, logs"):
        parse_config({"freshness_hours": {"database": 7}})
    with pytest.raises(ConfigError, match=r"must be an object of kind -> hours; kinds: db, fs, config, logs"):
        parse_config({"freshness_hours": 7})
    with pytest.raises(ConfigError, match=r"offsite_retention\.fs must be an object like"):
        parse_config({"offsite_retention": {"fs": 7}})


def test_optional_keys_accept_empty_and_lists_become_tuples():
    cfg = parse_config({"logs_dir": "", "offsite_bucket": None, "kms_key_id": "", "fs_excludes": [],
                        "mongo_databases": ["a", "b"], "restore_allowed_roots": ["/srv/x/../y"]})
    assert (cfg.logs_dir, cfg.offsite_bucket, cfg.kms_key_id, cfg.fs_excludes) == ("", "", "", ())
    assert cfg.mongo_databases == ("a", "b") and cfg.restore_allowed_roots == ("/srv/y",)
    assert parse_config({"offsite_retention": {"db": {"daily": 7}}}).offsite_policy("fs") == OpsConfig().retention["fs"]


def test_retention_overrides_one_kind_and_validates_it():
    cfg = parse_config({"retention": {"db": {"last": 2, "daily": 3}}})
    assert cfg.retention["db"].to_dict()["last"] == 2 and cfg.retention["db"].to_dict()["daily"] == 3
    assert cfg.retention["logs"].to_dict()["within_days"] == 30  # the runbook's rotate 30, untouched
    for bad in ({"database": {"daily": 1}}, {"db": {"daly": 7}}, {"db": {"daily": -1}}, {"db": 7}):
        with pytest.raises(ConfigError, match="'retention'"):
            parse_config({"retention": bad})


def test_encryption_and_object_lock_keys():
    assert parse_config(None).kms_key_id == "" and parse_config(None).object_lock_days == 0
    assert parse_config({"kms_key_id": "arn:aws:kms:x", "object_lock_days": 30}).object_lock_days == 30
    with pytest.raises(ConfigError, match="'object_lock_days'"):
        parse_config({"object_lock_days": 1.5})
