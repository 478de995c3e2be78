"""Off-site copies against real S3 servers: a second bucket on the stack's moto server (one client
reaches both: server-side copies) and a second moto server process standing in for another region
(streamed copies)."""

import hashlib
import json
import os
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config

from dev.stack import BIN, free_port, spawn, stop_process, wait_for_port
from gravitypm_ops import status
from gravitypm_ops.config import parse_config
from gravitypm_ops.offsite.copy import Copier
from gravitypm_ops.vault.layout import MANIFEST_NAME, IntegrityError, backup_prefix
from gravitypm_ops.vault.open import one_client_reaches_both, open_vault
from gravitypm_ops.vault.retention import RetentionPolicy
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.vault.streams import PART_SIZE, Protection
from tests.backups import new_bucket
from tests.fault_proxy import FaultProxy

NOW = datetime.now(UTC).replace(microsecond=0)
MiB = 2**20
KEEP_ALL = RetentionPolicy(last=100)


class Region:
    """A second S3 server process: another region, other credentials."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.key_id, self.secret = "AKIAOFFSITE" + uuid.uuid4().hex[:8].upper(), "offsite-" + uuid.uuid4().hex
        self.proc = spawn([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)], tmp_path / "s3.log")
        wait_for_port(self.port, 30, self.proc, "second moto server")
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, endpoint: str | None = None, **config):
        return boto3.client("s3", endpoint_url=endpoint or self.url, region_name="eu-west-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                            config=Config(**config) if config else None)

    def connection(self) -> str:
        return json.dumps({"conn_type": "aws", "login": self.key_id, "password": self.secret,
                           "extra": {"endpoint_url": self.url, "region_name": "eu-west-1"}})


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    started = Region(tmp_path_factory.mktemp("offsite-region"))
    yield started
    stop_process(started.proc)


@pytest.fixture
def primary(stack):
    return Vault(stack.vault_bucket, f"offsite-src-{uuid.uuid4().hex[:8]}", stack.s3_client(), signer=stack.signer())


@pytest.fixture
def same_server(stack):
    """An off-site vault in a second bucket of the stack's server, same credentials."""
    return Vault(new_bucket(stack.s3_client()), f"dr-{uuid.uuid4().hex[:6]}", stack.s3_client(), signer=stack.signer())


@pytest.fixture
def other_region(region, stack):
    return Vault(new_bucket(region.client(), region_name="eu-west-1"), "production", region.client(), signer=stack.signer())


def make_backup(vault, hours_ago: float, *sizes: int, kind: str = "db", verified: str | None = "passed") -> dict:
    """A committed backup with one random artifact per size, optionally with a verification record."""
    run_after = NOW - timedelta(hours=hours_ago)
    writer = vault.begin_backup(kind, dag_id="gravitypm_test", run_id=uuid.uuid4().hex, run_after=run_after)
    for i, size in enumerate(sizes or (1000,)):
        with writer.artifact(f"part{i}.bin", compression="none", format="bytes") as out:
            for start in range(0, size, MiB):
                out.write(os.urandom(min(MiB, size - start)))
    manifest = writer.commit(source={"host": "test"}, tools={}, content={})
    # Backdate "finished" so freshness and retention see the backup's age (the manifest is ours to write).
    manifest["finished"] = run_after.isoformat()
    key = backup_prefix(vault.prefix, kind, manifest["backup_id"]) + MANIFEST_NAME
    body = vault.sign({k: v for k, v in manifest.items() if k != "verification"})  # re-signed: we changed it
    vault.s3.put_object(Bucket=vault.bucket, Key=key, Body=json.dumps(body).encode())
    if verified:
        record(vault, manifest, verified)
    return vault.resolve(kind, manifest["backup_id"])


def record(vault, manifest, status: str, at: datetime | None = None) -> dict:
    rec = {"kind": manifest["kind"], "backup_id": manifest["backup_id"], "status": status,
           "finished": (at or datetime.now(UTC)).isoformat(), "checks": [{"name": "artifacts"}]}
    vault.record_verification(manifest, rec)
    return vault.sign(rec)  # as stored


def ids(*manifests) -> list[str]:
    return [m["backup_id"] for m in manifests]


def read_json(vault, key: str) -> dict:
    return json.loads(vault.s3.get_object(Bucket=vault.bucket, Key=key)["Body"].read())


def uploads(vault) -> list:
    return vault.s3.list_multipart_uploads(Bucket=vault.bucket).get("Uploads", [])


def assert_same_backup(primary_manifest, offsite_vault):
    copy = offsite_vault.resolve(primary_manifest["kind"], primary_manifest["backup_id"])
    for name in (a["name"] for a in copy["artifacts"]):
        offsite_vault.check_artifact(copy, name)  # re-read off-site: size and sha256 of the manifest
    assert [(a["name"], a["size"], a["sha256"]) for a in copy["artifacts"]] == [
        (a["name"], a["size"], a["sha256"]) for a in primary_manifest["artifacts"]]
    assert all(a["key"].startswith(offsite_vault.prefix + "/") for a in copy["artifacts"])
    return copy


# --- server-side: one client reaches both -----------------------------------------------------------
def test_server_side_copy_in_parts_is_verified_and_carries_the_verification_records(stack, primary, same_server):
    manifest = make_backup(primary, 2, 1000, 12 * MiB)  # the big one goes as 3 UploadPartCopy parts
    copier = Copier(primary, same_server, server_side=True, copy_part_size=5 * MiB)

    report = copier.sync("db", KEEP_ALL, NOW)

    assert [c["backup_id"] for c in report["copied"]] == [manifest["backup_id"]] and report["failed"] == []
    copy = assert_same_backup(manifest, same_server)
    assert copy["offsite_copy"]["method"] == "server-side"
    assert copy["offsite_copy"]["checked"] == "sha256 of the copy re-read"
    assert same_server.verifications(copy) == primary.verifications(manifest)  # byte-for-byte records
    assert same_server.latest("db")["backup_id"] == manifest["backup_id"]  # newest verified, as on the primary
    head = stack.s3_client().head_object(Bucket=same_server.bucket, Key=copy["artifacts"][1]["key"])
    assert head["ServerSideEncryption"] == "AES256"
    assert uploads(same_server) == []
    # A second run has nothing to do.
    assert copier.sync("db", KEEP_ALL, NOW)["copied"] == []


def test_server_side_copy_of_a_corrupted_primary_artifact_is_caught_and_never_committed(stack, primary, same_server):
    manifest = make_backup(primary, 2, 2000)
    key = manifest["artifacts"][0]["key"]
    data = bytearray(stack.s3_client().get_object(Bucket=primary.bucket, Key=key)["Body"].read())
    data[100] ^= 0xFF  # corruption at rest after the backup (and its verification) was written
    stack.s3_client().put_object(Bucket=primary.bucket, Key=key, Body=bytes(data))

    report = Copier(primary, same_server, server_side=True).sync("db", KEEP_ALL, NOW)

    assert [f["backup_id"] for f in report["failed"]] == [manifest["backup_id"]]
    assert "IntegrityError" in report["failed"][0]["error"] and "part0.bin" in report["failed"][0]["error"]
    assert same_server.list_backups("db") == []  # never committed off-site
    assert offsite_keys(same_server) == []  # and the bad bytes were removed: no orphan without a manifest
    assert report["failed"][0]["cleanup"] == "removed 1 partial object(s)"


def corrupt(stack, vault, artifact: dict, at: int) -> None:
    s3 = stack.s3_client()
    data = bytearray(s3.get_object(Bucket=vault.bucket, Key=artifact["key"])["Body"].read())
    data[at] ^= 0xFF
    s3.put_object(Bucket=vault.bucket, Key=artifact["key"], Body=bytes(data))


def offsite_keys(vault) -> list[str]:
    """The current (not deleted) objects under the vault's prefix."""
    listed = vault.s3.list_objects_v2(Bucket=vault.bucket, Prefix=vault.prefix + "/")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_copy_failing_its_hash_check_removes_what_it_copied_before_server_side_and_locked(stack, primary):
    """The first artifact copies and checks fine (and is locked), the second fails its check: neither
    stays off-site (on a versioned bucket: delete markers; lifecycle frees the bytes once unlocked)."""
    locked = Vault(new_bucket(stack.s3_client(), lock=True), "dr", stack.s3_client(), Protection(object_lock_days=2), stack.signer())
    manifest = make_backup(primary, 2, 1000, 3000)
    corrupt(stack, primary, manifest["artifacts"][1], 7)

    report = Copier(primary, locked, server_side=True).sync("db", KEEP_ALL, NOW)

    assert [f["backup_id"] for f in report["failed"]] == [manifest["backup_id"]]
    assert "part1.bin" in report["failed"][0]["error"]
    assert offsite_keys(locked) == [] and locked.inventory("db") == {}
    assert report["failed"][0]["cleanup"] == "removed 2 partial object(s)"  # the checked (locked) one too


def test_a_streamed_copy_failing_its_hash_check_removes_the_artifacts_already_sent(stack, primary, other_region):
    manifest = make_backup(primary, 2, 1000, 6 * MiB)
    corrupt(stack, primary, manifest["artifacts"][1], -1)

    report = Copier(primary, other_region, server_side=False).sync("db", KEEP_ALL, NOW)

    assert "IntegrityError" in report["failed"][0]["error"] and "part1.bin" in report["failed"][0]["error"]
    assert offsite_keys(other_region) == [] and uploads(other_region) == []


def test_a_failed_manifest_write_removes_the_copied_artifacts(region, primary, other_region):
    manifest = make_backup(primary, 2, 1000, 2000)

    def fail(method, path):
        return method == "PUT" and path.split("?")[0].endswith("/" + MANIFEST_NAME)

    with FaultProxy(region.port, fail) as proxy:
        through_proxy = Vault(other_region.bucket, other_region.prefix,
                              region.client(proxy.url, retries={"max_attempts": 1, "mode": "standard"}), signer=other_region.signer)
        report = Copier(primary, through_proxy, server_side=False).sync("db", KEEP_ALL, NOW)
    assert [f["backup_id"] for f in report["failed"]] == [manifest["backup_id"]]
    assert offsite_keys(other_region) == []

    report = Copier(primary, other_region, server_side=False).sync("db", KEEP_ALL, NOW)
    assert [c["backup_id"] for c in report["copied"]] == [manifest["backup_id"]]
    assert_same_backup(manifest, other_region)


def test_copies_get_the_offsite_object_lock(stack, primary):
    locked = Vault(new_bucket(stack.s3_client(), lock=True), "dr", stack.s3_client(), Protection(object_lock_days=2), stack.signer())
    manifest = make_backup(primary, 1, 3000)

    Copier(primary, locked, server_side=True).sync("db", KEEP_ALL, NOW)

    copy = locked.resolve("db", manifest["backup_id"])
    # The copy's manifest describes the off-site protection, not the primary's (no lock there).
    assert copy["protection"] == locked.protection.describe() != manifest["protection"]
    assert copy["protection"]["object_lock"] == {"mode": "COMPLIANCE", "days": 2}
    keys = [copy["artifacts"][0]["key"], backup_prefix("dr", "db", manifest["backup_id"]) + MANIFEST_NAME]
    for key in keys:
        assert locked.locked_until(key).startswith("retained until"), key


# --- streamed: another server ("region"), other credentials -------------------------------------------
def test_streamed_copy_to_another_region_hashes_on_the_way_with_bounded_memory(primary, other_region):
    small, big = make_backup(primary, 3, 20 * MiB), make_backup(primary, 2, 60 * MiB)
    copier = Copier(primary, other_region, server_side=False)

    tracemalloc.start()
    copier.copy_backup(small, [])
    _, peak_small = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    copier.copy_backup(big, [])
    _, peak_big = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert peak_big < 3 * PART_SIZE, peak_big  # a part being assembled, its copy for the HTTP client, read-ahead
    assert peak_big < 1.25 * peak_small  # flat: 3x the bytes, not more memory
    for manifest in (small, big):
        copy = assert_same_backup(manifest, other_region)
        assert copy["offsite_copy"]["method"] == "streamed"


def test_streamed_copy_of_a_corrupted_artifact_is_aborted_before_it_is_assembled(stack, primary, other_region):
    manifest = make_backup(primary, 2, 12 * MiB)
    key = manifest["artifacts"][0]["key"]
    data = bytearray(stack.s3_client().get_object(Bucket=primary.bucket, Key=key)["Body"].read())
    data[-1] ^= 0x01  # the very last byte: only the hash at EOF can see it
    stack.s3_client().put_object(Bucket=primary.bucket, Key=key, Body=bytes(data))

    with pytest.raises(IntegrityError, match="part0.bin"):
        Copier(primary, other_region, server_side=False).copy_backup(manifest, [])

    assert other_region.s3.list_objects_v2(Bucket=other_region.bucket).get("KeyCount", 0) == 0
    assert uploads(other_region) == []


@pytest.mark.parametrize("where", ["second artifact", "manifest"])
def test_a_copy_interrupted_midway_is_invisible_offsite_and_the_next_run_completes_it(
        region, primary, other_region, where):
    manifest = make_backup(primary, 2, 1000, 12 * MiB)
    second = manifest["artifacts"][1]["name"]

    # Every DELETE fails too (the abort, the removal of what was copied): as if the worker died
    # mid-copy, so nothing is cleaned up and the next run must cope with the leftovers.
    if where == "second artifact":
        def fail(method, path):
            return (second in path and "partNumber=2" in path and method == "PUT") or method == "DELETE"
    else:
        def fail(method, path):
            return (method == "PUT" and path.split("?")[0].endswith("/" + MANIFEST_NAME)) or method == "DELETE"

    with FaultProxy(region.port, fail) as proxy:
        through_proxy = Vault(other_region.bucket, other_region.prefix,
                              region.client(proxy.url, retries={"max_attempts": 2, "mode": "standard"}), signer=other_region.signer)
        report = Copier(primary, through_proxy, server_side=False, upload_part_size=5 * MiB).sync("db", KEEP_ALL, NOW)
        assert proxy.failed, "the fault was never injected"
    assert [f["backup_id"] for f in report["failed"]] == [manifest["backup_id"]]
    if where == "second artifact":  # the error that broke the copy, not the failing abort's
        error = report["failed"][0]["error"]
        assert "UploadPart" in error and "AbortMultipartUpload" not in error, error

    # Looking at the off-site server directly: bytes are there, but no backup.
    left = [o["Key"] for o in other_region.s3.list_objects_v2(Bucket=other_region.bucket).get("Contents", [])]
    assert any(k.endswith("part0.bin") for k in left)
    assert other_region.list_backups("db") == [] and other_region.inventory("db") == {}
    if where == "second artifact":
        assert len(uploads(other_region)) == 1  # the dead upload

    report = Copier(primary, other_region, server_side=False).sync("db", KEEP_ALL, NOW)

    assert [c["backup_id"] for c in report["copied"]] == [manifest["backup_id"]] and report["failed"] == []
    assert_same_backup(manifest, other_region)
    assert uploads(other_region) == []  # the dead upload was aborted


def test_verification_records_written_after_the_copy_follow_on_the_next_run(primary, other_region):
    manifest = make_backup(primary, 2, 1000, verified=None)
    copier = Copier(primary, other_region, server_side=False)
    copier.sync("db", KEEP_ALL, NOW)
    assert other_region.resolve("db", manifest["backup_id"])["verification"] is None

    rec = record(primary, manifest, "passed")
    report = copier.sync("db", KEEP_ALL, NOW)

    assert report["copied"] == [] and report["records_copied"] == 1
    assert other_region.resolve("db", manifest["backup_id"])["verification"] == rec
    assert copier.sync("db", KEEP_ALL, NOW)["records_copied"] == 0


def test_a_record_that_cannot_be_copied_is_reported_and_stops_nothing(region, primary, other_region):
    manifest = make_backup(primary, 2, 1000, verified=None)
    Copier(primary, other_region, server_side=False).sync("db", KEEP_ALL, NOW)
    record(primary, manifest, "passed")

    def fail(method, path):
        return method == "PUT" and "/verifications/" in path

    with FaultProxy(region.port, fail) as proxy:
        through_proxy = Vault(other_region.bucket, other_region.prefix,
                              region.client(proxy.url, retries={"max_attempts": 1, "mode": "standard"}), signer=other_region.signer)
        report = Copier(primary, through_proxy, server_side=False).sync("db", KEEP_ALL, NOW)  # does not raise
        assert proxy.failed, "the fault was never injected"
    assert report["records_copied"] == 0
    assert [f["backup_id"] for f in report["failed"]] == [manifest["backup_id"]]
    assert report["failed"][0]["error"].startswith("records: ")

    assert Copier(primary, other_region, server_side=False).sync("db", KEEP_ALL, NOW)["records_copied"] == 1


# --- connections, status, freshness --------------------------------------------------------------
def test_one_client_reaches_both_only_with_the_same_endpoint_and_credentials(stack, region, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", json.dumps(stack.connections()["gravitypm_aws"]))
    assert one_client_reaches_both() is True
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", region.connection())
    assert one_client_reaches_both() is False


def offsite_cfg(stack, primary, other, **extra):
    return parse_config({"vault_bucket": stack.vault_bucket, "vault_prefix": primary.prefix,
                         "offsite_bucket": other.bucket, "offsite_prefix": other.prefix, **extra})


def test_status_and_freshness_say_whether_the_newest_backup_is_offsite(
        stack, region, primary, other_region, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", region.connection())
    cfg = offsite_cfg(stack, primary, other_region)
    old, new = make_backup(primary, 30, kind="logs"), make_backup(primary, 1, kind="logs")
    Copier(primary, other_region, server_side=False).copy_backup(old, [])  # the newest is not copied yet
    now = datetime.now(UTC)

    summaries = {kind: primary.summary(kind, now) for kind in ("db", "logs")}
    top = status.status_fields(cfg, summaries, now)

    assert top == {"enabled": True, "bucket": other_region.bucket, "prefix": "production"}
    assert summaries["db"] is None
    entry = summaries["logs"]["offsite"]
    assert entry["copied"] is False and entry["latest_id"] == old["backup_id"] and entry["count"] == 1
    assert 29.9 < entry["age_hours"] < 31
    findings = {f.subject: f for f in status.freshness_findings(cfg, now)}
    # The copy's age counts from NOW (taken when the module was imported), so it grows with the suite's run time.
    age = (now - datetime.fromisoformat(old["finished"])).total_seconds() / 3600
    assert findings["logs off-site"].status == "breach"
    assert findings["logs off-site"].detail == f"last off-site copy {age:.1f} h ago (limit 26 h)"
    assert findings["db off-site"].detail == "no off-site copy yet"

    Copier(primary, other_region, server_side=False).sync("logs", KEEP_ALL, now)
    status.status_fields(cfg, summaries, now)
    assert summaries["logs"]["offsite"]["copied"] is True and summaries["logs"]["offsite"]["verified"] is True
    assert summaries["logs"]["offsite"]["latest_id"] == new["backup_id"]
    assert {f.subject: f.status for f in status.freshness_findings(cfg, now)}["logs off-site"] == "ok"


def test_an_unreachable_offsite_vault_is_a_breach_not_a_crash(stack, primary, monkeypatch):
    dead = json.dumps({"conn_type": "aws", "login": "x", "password": "y",
                       "extra": {"endpoint_url": f"http://127.0.0.1:{free_port()}", "region_name": "eu-west-1",
                                 "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}})
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", dead)
    cfg = parse_config({"vault_bucket": stack.vault_bucket, "vault_prefix": primary.prefix,
                        "offsite_bucket": "gpm-gone"})
    (finding,) = status.freshness_findings(cfg, NOW)
    assert finding.subject == "off-site" and finding.status == "breach" and "unreachable" in finding.detail
    assert "error" in status.status_fields(cfg, {"db": None}, NOW)


# --- the DAG, for real -------------------------------------------------------------------------------
def test_the_dag_copies_applies_offsite_retention_and_writes_status(run_dag, stack, region, primary, other_region,
                                                                    monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", region.connection())
    d3, d2 = make_backup(primary, 72, 2000), make_backup(primary, 48, 2000)
    d1 = make_backup(primary, 24, 2000, verified=None)  # newest, not verified yet
    failed = make_backup(primary, 60, 2000, verified="failed")
    overrides = {"vault_prefix": primary.prefix, "offsite_bucket": other_region.bucket, "offsite_prefix": "production"}

    first = run_dag("gravitypm_offsite_copy", overrides)

    assert first.state == "success", first.task_states
    copied = first.xcom("copy_backups")
    assert copied["method"] == "streamed"
    assert [c["backup_id"] for c in copied["kinds"]["db"]["copied"]] == ids(d1, d2, d3)  # newest first
    assert {"backup_id": failed["backup_id"], "reason": "its newest verification on the primary failed"} in \
        copied["kinds"]["db"]["skipped"]
    status = read_json(primary, f"{primary.prefix}/status.json")
    assert status["offsite"]["enabled"] is True and status["kinds"]["db"]["offsite"]["copied"] is True
    own = read_json(other_region, "production/status.json")
    assert own["kinds"]["db"]["count"] == 3 and own["kinds"]["db"]["latest_verified_id"] == d2["backup_id"]

    # A stricter off-site policy: the newest and the newest verified stay, the rest goes.
    second = run_dag("gravitypm_offsite_copy", {**overrides, "offsite_retention": {"db": {"last": 1}}})

    assert second.state == "success", second.task_states
    retention = second.xcom("apply_offsite_retention")["kinds"]["db"]
    assert retention["removed"] == [d3["backup_id"]]
    kept = {k["backup_id"]: k["reasons"] for k in retention["kept"]}
    assert "newest verified" in kept[d2["backup_id"]] and "newest backup" in kept[d1["backup_id"]]
    assert [m["backup_id"] for m in other_region.list_backups("db")] == ids(d2, d1)
    assert len(primary.list_backups("db")) == 4  # the primary is untouched
    assert second.xcom("copy_backups")["kinds"]["db"]["copied"] == []  # nothing to copy again...
    third = run_dag("gravitypm_offsite_copy", {**overrides, "offsite_retention": {"db": {"last": 1}}})
    assert third.xcom("copy_backups")["kinds"]["db"]["copied"] == []  # ...nor after retention removed d3


def test_the_dag_is_a_clear_no_op_while_offsite_is_off(run_dag, stack, primary):
    make_backup(primary, 1, 1000)

    result = run_dag("gravitypm_offsite_copy", {"vault_prefix": primary.prefix})

    assert result.state == "success", result.task_states
    assert result.xcom("copy_backups") == {"enabled": False}
    assert result.xcom("apply_offsite_retention") == {"enabled": False}
    assert result.xcom("write_status") == {"enabled": False}
    assert primary.s3.list_objects_v2(Bucket=primary.bucket, Prefix=f"{primary.prefix}/status.json")["KeyCount"] == 0
    # The backup status says so too.
    summaries = {"db": primary.summary("db", NOW)}
    assert status.status_fields(parse_config({}), summaries, NOW) == {"enabled": False}
    assert "offsite" not in summaries["db"]


def test_the_verification_dags_freshness_audit_fails_on_a_lagging_offsite_copy(run_dag, stack, region, primary,
                                                                                other_region, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", region.connection())
    old = make_backup(primary, 30, 1000, kind="logs")
    make_backup(primary, 1, 1000, kind="logs", verified=None)  # the verification DAG verifies it
    Copier(primary, other_region, server_side=False).copy_backup(old, [])

    result = run_dag("gravitypm_backup_verification", {"vault_prefix": primary.prefix, "offsite_prefix": "production",
                                                       "offsite_bucket": other_region.bucket})

    findings = {f["subject"]: f for f in result.xcom("audit_freshness", key="check")["findings"]}
    assert findings["logs"]["status"] == "ok"
    assert findings["logs off-site"]["status"] == "breach"
    assert "30." in findings["logs off-site"]["detail"] and "limit 26 h" in findings["logs off-site"]["detail"]
    assert result.task_states["audit_freshness"] == "failed"


def test_open_vault_offsite_reads_what_was_copied(stack, region, primary, other_region, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE", region.connection())
    manifest = make_backup(primary, 1, 5000)
    Copier(primary, other_region, server_side=False).sync("db", KEEP_ALL, NOW)

    vault = open_vault(offsite_cfg(stack, primary, other_region), "offsite")

    latest = vault.resolve("db", "latest")
    assert latest["backup_id"] == manifest["backup_id"]
    with vault.open_artifact(latest, "part0.bin") as body:
        assert hashlib.sha256(body.read()).hexdigest() == manifest["artifacts"][0]["sha256"]
