"""Off-site copy logic that needs no server: which vault a source names, what a copy plan holds."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.config import parse_config
from gravitypm_ops.offsite.copy import missing_records, plan_copies
from gravitypm_ops.vault.open import NOT_CONFIGURED, open_vault
from gravitypm_ops.vault.retention import RetentionPolicy


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


# --- which backups a run copies ------------------------------------------------------------------
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def backup(days_ago: float, verification: str | None = None) -> dict:
    finished = NOW - timedelta(days=days_ago)
    return {
        "kind": "db", "backup_id": f"{finished:%Y%m%dT%H%M%SZ}-0000000000", "finished": finished.isoformat(),
        "verification": None if verification is None else {"status": verification, "finished": finished.isoformat()},
    }


def ids(manifests) -> list[str]:
    return [m["backup_id"] for m in manifests]


def test_what_is_missing_is_copied_newest_first_and_what_is_there_is_not():
    old, mid, new = backup(3, "passed"), backup(2, "passed"), backup(1)
    plan = plan_copies([old, mid, new], [old], RetentionPolicy(daily=7), NOW)
    assert ids(plan.copy) == [new["backup_id"], mid["backup_id"]]
    assert plan.skip == ()


def test_a_backup_that_failed_verification_is_not_shipped():
    good, bad = backup(2, "passed"), backup(1, "failed")
    plan = plan_copies([good, bad], [], RetentionPolicy(daily=7), NOW)
    assert ids(plan.copy) == [good["backup_id"]]
    assert plan.skip == ((bad["backup_id"], "its newest verification on the primary failed"),)


def test_what_offsite_retention_would_delete_at_once_is_not_copied():
    primary = [backup(d, "passed") for d in (5, 4, 3, 2, 1)]
    plan = plan_copies(primary, [], RetentionPolicy(daily=2), NOW)
    assert ids(plan.copy) == ids(primary[:2:-1])  # the two newest
    assert [b for b, _ in plan.skip] == ids(primary[2::-1])
    assert {r for _, r in plan.skip} == {"off-site retention would not keep it"}
    # Once they are off-site, the next run copies nothing (retention and copying do not fight).
    assert plan_copies(primary, list(plan.copy), RetentionPolicy(daily=2), NOW).copy == ()


def test_the_newest_verified_backup_is_copied_even_when_the_policy_keeps_only_the_newest():
    verified, unverified = backup(2, "passed"), backup(1)
    plan = plan_copies([verified, unverified], [], RetentionPolicy(last=1), NOW)
    assert ids(plan.copy) == [unverified["backup_id"], verified["backup_id"]]


def test_older_offsite_copies_count_when_the_policy_decides():
    # Off-site already holds this day's backup: a second one of the same day adds no daily bucket
    # but is the newest, so it is kept (and copied); an older one of a day already covered is not.
    there = backup(1.0, "passed")
    newer_same_day, older = backup(0.9, "passed"), backup(1.1, "passed")
    plan = plan_copies([older, there, newer_same_day], [there], RetentionPolicy(daily=1), NOW)
    assert ids(plan.copy) == [newer_same_day["backup_id"]]
    assert [b for b, _ in plan.skip] == [older["backup_id"]]


def test_missing_records_compare_by_file_name_across_prefixes():
    primary = ["production/db/x/verifications/20261127T010000000000Z-aa.json",
               "production/db/x/verifications/20261127T020000000000Z-bb.json"]
    offsite = ["dr/db/x/verifications/20261127T010000000000Z-aa.json"]
    assert missing_records(primary, offsite) == [primary[1]]
    assert missing_records(primary, []) == primary


# --- clean-up after a failed copy -------------------------------------------------------------------
class _Offsite:
    """The off-site vault calls Copier.remove_partial makes, recorded."""

    def __init__(self, manifest: bytes | None | Exception = None, refuse: dict | None = None):
        self.manifest, self.refuse, self.deleted, self.aborted = manifest, refuse or {}, [], []

    def read_bytes(self, key):
        if isinstance(self.manifest, Exception):
            raise self.manifest
        return self.manifest if key.endswith("/manifest.json") else None

    def discard_incomplete(self, prefix):
        self.aborted.append(prefix)

    def delete_key(self, key):
        if key in self.refuse:
            return self.refuse[key]
        self.deleted.append(key)
        return None


def _copier(offsite):
    from gravitypm_ops.offsite.copy import Copier

    return Copier(object(), offsite, server_side=True)


def test_a_failed_copy_removes_what_it_wrote_and_its_open_uploads():
    offsite = _Offsite(refuse={"p/b.bin": "AccessDenied"})
    outcome = _copier(offsite).remove_partial("p/", ["p/a.bin", "p/b.bin", "p/a.bin"])
    assert offsite.deleted == ["p/a.bin"] and offsite.aborted == ["p/"]
    assert outcome == "removed 1 partial object(s); could not remove b.bin (AccessDenied)"


@pytest.mark.parametrize("manifest, says", [
    (b"{}", "committed by another run"),
    (ConnectionError("no route"), "cannot tell whether p/manifest.json exists"),
])
def test_nothing_is_removed_when_the_manifest_is_there_or_cannot_be_checked(manifest, says):
    offsite = _Offsite(manifest=manifest)
    outcome = _copier(offsite).remove_partial("p/", ["p/a.bin"])
    assert offsite.deleted == [] and offsite.aborted == [] and says in outcome
