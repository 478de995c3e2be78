"""Off-site copy logic that needs no server: which vault a source names, what a copy plan holds."""

import json

import pytest

from gravitypm_ops.config import parse_config
from gravitypm_ops.offsite import NOT_CONFIGURED, open_vault


def aws_conn(endpoint: str) -> str:
    return json.dumps({"conn_type": "aws", "login": "AKIATEST", "password": "secret-test",
                       "extra": {"endpoint_url": endpoint, "region_name": "eu-west-1"}})


def test_offsite_source_is_refused_while_offsite_bucket_is_empty():
    with pytest.raises(ValueError) as err:
        open_vault(parse_config({}), "offsite")
    assert str(err.value) == NOT_CONFIGURED == "off-site vault is not configured (offsite_bucket is empty)"


def test_an_unknown_source_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown vault source 'backup-site'.*primary, offsite"):
        open_vault(parse_config({"offsite_bucket": "gpm-offsite"}), "backup-site")


def test_each_source_uses_its_own_connection_bucket_and_prefix(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS", aws_conn("http://127.0.0.1:1"))
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", aws_conn("http://127.0.0.1:2"))
    cfg = parse_config({"vault_bucket": "gpm-primary", "vault_prefix": "production", "kms_key_id": "alias/primary",
                        "object_lock_days": 30, "offsite_bucket": "gpm-offsite"})
    primary, offsite = open_vault(cfg, "primary"), open_vault(cfg, "offsite")
    assert (primary.bucket, primary.prefix, primary.s3.meta.endpoint_url) == (
        "gpm-primary", "production", "http://127.0.0.1:1")
    assert (offsite.bucket, offsite.prefix, offsite.s3.meta.endpoint_url) == (
        "gpm-offsite", "production", "http://127.0.0.1:2")  # offsite_prefix defaults to vault_prefix
    # The primary's KMS key cannot encrypt in another region/account: SSE-S3 there; Object Lock follows.
    assert offsite.protection.describe()["encryption"] == "SSE-S3"
    assert offsite.protection.object_lock_days == 30
    renamed = open_vault(parse_config({"offsite_bucket": "gpm-offsite", "offsite_prefix": "/dr/copy/"}), "offsite")
    assert renamed.prefix == "dr/copy"
