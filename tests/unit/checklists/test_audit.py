"""Audit history: record validation and hashing (pure), chain storage against the real moto S3."""

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.checklists import audit as audit_module
from gravitypm_ops.checklists.audit import AuditError, AuditLog, canonical, record_hash, validate_record
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.vault.streams import Protection

T0 = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def item(n: int, outcome: str = "passed", **extra) -> dict:
    return {
        "period": "2026-W48", "run_id": "scheduled__2026-11-23", "dag_id": "gravitypm_weekly_maintenance",
        "item": f"item_{n}", "title": f"Item {n}", "item_kind": "automated", "outcome": outcome,
        "actor": "automation", "started_at": T0 + timedelta(minutes=n), "completed_at": T0 + timedelta(minutes=n, seconds=5),
        "evidence": {"summary": f"evidence {n}", "links": [{"label": "log", "url": "http://x/log"}], "data": {"n": n}},
        **extra,
    }


# --- pure -----------------------------------------------------------------------------------------
def test_hash_is_sha256_of_canonical_json_without_hash():
    record = {"b": 1, "a": "é", "hash": "ignored"}
    assert canonical({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'
    import hashlib

    assert record_hash(record) == hashlib.sha256(b'{"a":"\\u00e9","b":1}').hexdigest()
    assert record_hash({**record, "a": "e"}) != record_hash(record)


def test_validate_fills_schema_and_checklist_and_normalises_times():
    clean = validate_record("weekly_maintenance", item(1))
    assert clean["schema"] == 1 and clean["checklist"] == "weekly_maintenance"
    assert clean["started_at"] == "2026-11-27T18:01:00+00:00"
    assert clean["evidence"]["links"] == [{"label": "log", "url": "http://x/log"}]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"outcome": "ok"}, "outcome 'ok' is not one of"),
        ({"item_kind": "robot"}, "item_kind"),
        ({"seq": 3}, "must not carry seq"),
        ({"hash": "x"}, "must not carry hash"),
        ({"checklist": "monthly_maintenance"}, "appended to 'weekly_maintenance'"),
        ({"actor": ""}, "'actor' must be a non-empty string"),
        ({"completed_at": "yesterday"}, "not an ISO 8601 time"),
        ({"evidence": "fine"}, "evidence must be"),
        ({"evidence": {"summary": "s", "links": ["http://x"]}}, "links must be"),
        ({"evidence": {"summary": "s", "data": {"blob": "x" * 70000}}}, "exceeds"),
    ],
)
def test_bad_records_are_refused_with_the_reason(change, message):
    with pytest.raises(ValueError, match=message):
        validate_record("weekly_maintenance", {**item(1), **change})


def test_missing_fields_and_bad_checklist_names_are_refused():
    record = item(1)
    del record["period"], record["actor"]
    with pytest.raises(ValueError, match="lacks period, actor"):
        validate_record("weekly_maintenance", record)
    with pytest.raises(ValueError, match="checklist name"):
        AuditLog(Vault("b", "p", s3_client=None))._prefix("../etc")


# --- storage (moto over HTTP) ---------------------------------------------------------------------
@pytest.fixture
def audit(stack):
    return AuditLog(Vault(stack.vault_bucket, f"test-{uuid.uuid4().hex[:8]}", stack.s3_client(), signer=stack.signer()))


def test_append_chains_records_in_order_at_the_contract_keys(audit, stack):
    first = audit.append("weekly_maintenance", [item(1), item(2, "warning")])
    second = audit.append("weekly_maintenance", [item(3, "missed")])
    assert [r["seq"] for r in first + second] == [1, 2, 3]
    assert first[0]["prev_hash"] == "" and first[1]["prev_hash"] == first[0]["hash"]
    assert second[0]["prev_hash"] == first[1]["hash"]
    key = f"{audit.vault.prefix}/audit/weekly_maintenance/0000000002.json"
    stored = json.loads(stack.s3_client().get_object(Bucket=audit.vault.bucket, Key=key)["Body"].read())
    assert stored == first[1] and stored["hash"] == record_hash(stored)
    head = stack.s3_client().head_object(Bucket=audit.vault.bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    report = audit.verify("weekly_maintenance")
    assert (report.ok, report.records, report.problems, report.head_hash) == (True, 3, [], second[0]["hash"])


def test_a_bad_record_in_a_batch_writes_nothing(audit):
    with pytest.raises(ValueError, match="outcome"):
        audit.append("weekly_maintenance", [item(1), item(2, "great")])
    assert audit.records("weekly_maintenance") == []


def test_records_filter_by_checklist_time_and_outcome(audit):
    audit.append("weekly_maintenance", [item(1), item(2, "failed")])
    audit.append("evening_checklist", [item(3, "missed", period="2026-11-27")])
    assert audit.checklists() == ["evening_checklist", "weekly_maintenance"]
    assert [r["item"] for r in audit.records()] == ["item_3", "item_1", "item_2"]
    assert [r["item"] for r in audit.records("weekly_maintenance", outcome="failed")] == ["item_2"]
    assert [r["item"] for r in audit.records(outcome={"failed", "missed"})] == ["item_3", "item_2"]
    since = T0 + timedelta(minutes=2)
    assert [r["item"] for r in audit.records(since=since)] == ["item_3", "item_2"]
    assert [r["item"] for r in audit.records(until=since.isoformat())] == ["item_1"]


def chain_of_three(audit) -> tuple[list[dict], str]:
    records = audit.append("weekly_maintenance", [item(1), item(2), item(3)])
    return records, f"{audit.vault.prefix}/audit/weekly_maintenance/"


def test_an_edited_record_is_detected(audit, stack):
    records, prefix = chain_of_three(audit)
    forged = {**records[1], "outcome": "passed", "actor": "mallory", "evidence": {"summary": "all fine"}}
    stack.s3_client().put_object(Bucket=audit.vault.bucket, Key=f"{prefix}0000000002.json", Body=json.dumps(forged))
    report = audit.verify("weekly_maintenance")
    assert not report.ok
    assert "seq 2: content does not match its hash (record edited)" in report.problems
    assert "0000000002.json: overwritten (2 versions)" in report.problems
    stack.s3_client().put_object(
        Bucket=audit.vault.bucket, Key=f"{prefix}0000000003.json", Body=json.dumps({**records[2], "outcome": "x"})
    )
    with pytest.raises(AuditError, match="run verify"):  # nothing is chained onto a tampered newest record
        audit.append("weekly_maintenance", [item(4)])


@pytest.mark.parametrize("body", [b"not json {", b"[1, 2]", b"\xff\xfe"])
def test_garbage_over_a_record_is_reported_not_a_crash(audit, stack, body):
    _, prefix = chain_of_three(audit)
    stack.s3_client().put_object(Bucket=audit.vault.bucket, Key=f"{prefix}0000000002.json", Body=body)
    report = audit.verify("weekly_maintenance")
    assert not report.ok and "seq 2: not a JSON record (record edited)" in report.problems
    assert "seq 3: prev_hash does not match seq 2's hash (chain broken)" in report.problems
    assert [r["seq"] for r in audit.records("weekly_maintenance")] == [1, 3]  # the pages still show the rest
    stack.s3_client().put_object(Bucket=audit.vault.bucket, Key=f"{prefix}0000000003.json", Body=body)
    with pytest.raises(AuditError, match="run verify"):  # nothing is chained onto a garbage newest record
        audit.append("weekly_maintenance", [item(4)])


def test_a_rehashed_forgery_still_breaks_the_link_and_leaves_versions(audit, stack):
    records, prefix = chain_of_three(audit)
    forged = {**records[0], "outcome": "failed"}
    forged["hash"] = record_hash(forged)  # a careful forger recomputes the record's own hash
    stack.s3_client().put_object(Bucket=audit.vault.bucket, Key=f"{prefix}0000000001.json", Body=json.dumps(forged))
    problems = audit.verify("weekly_maintenance").problems
    assert "seq 2: prev_hash does not match seq 1's hash (chain broken)" in problems
    assert "0000000001.json: overwritten (2 versions)" in problems


def test_a_deleted_record_is_detected_in_the_middle_and_at_the_end(audit, stack):
    _, prefix = chain_of_three(audit)
    s3 = stack.s3_client()
    s3.delete_object(Bucket=audit.vault.bucket, Key=f"{prefix}0000000002.json")
    problems = audit.verify("weekly_maintenance").problems
    assert "seq 2 missing (deleted record)" in problems
    assert "0000000002.json: deleted (delete marker in the bucket)" in problems
    s3.delete_object(Bucket=audit.vault.bucket, Key=f"{prefix}0000000003.json")  # no gap left behind by this one
    report = audit.verify("weekly_maintenance")
    assert not report.ok and "0000000003.json: deleted (delete marker in the bucket)" in report.problems


def test_deletion_on_an_unversioned_bucket_is_still_seen_as_a_gap(stack):
    s3 = stack.s3_client()
    bucket = f"audit-plain-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    audit = AuditLog(Vault(bucket, "p", s3))
    chain_of_three(audit)
    s3.delete_object(Bucket=bucket, Key="p/audit/weekly_maintenance/0000000001.json")
    s3.put_object(Bucket=bucket, Key="p/audit/weekly_maintenance/notes.txt", Body=b"hi")
    # A copy of a record in a sub-folder is no record of the chain (it would otherwise become its tail).
    copy = s3.get_object(Bucket=bucket, Key="p/audit/weekly_maintenance/0000000003.json")["Body"].read()
    s3.put_object(Bucket=bucket, Key="p/audit/weekly_maintenance/x/0000000003.json", Body=copy)
    report = audit.verify("weekly_maintenance")
    assert report.records == 2
    assert report.problems == ["notes.txt: unexpected object in the audit chain",
                               "x/0000000003.json: unexpected object in the audit chain",
                               "seq 1 missing (deleted record)"]


def test_concurrent_appenders_both_land_in_one_unbroken_chain(audit):
    other = AuditLog(Vault(audit.vault.bucket, audit.vault.prefix, audit.vault.s3))
    errors = []

    def write(log, base):
        try:
            for n in range(3):
                log.append("weekly_maintenance", [item(base + n)])
        except Exception as err:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(audit, 10)), threading.Thread(target=write, args=(other, 20))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = audit.verify("weekly_maintenance")
    assert report.ok and report.records == 6, report.problems
    assert sorted(r["item"] for r in audit.records("weekly_maintenance")) == sorted(
        [f"item_{n}" for n in (10, 11, 12, 20, 21, 22)]
    )


def test_object_lock_vault_locks_every_record_and_refuses_deletes(stack):
    s3 = stack.s3_client()
    bucket = f"audit-locked-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    audit = AuditLog(Vault(bucket, "p", s3, Protection(object_lock_days=1)))
    stored = audit.append("monthly_maintenance", [item(1)])
    key = "p/audit/monthly_maintenance/0000000001.json"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] > datetime.now(UTC)
    with pytest.raises(s3.exceptions.ClientError):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=head["VersionId"])
    assert audit.records("monthly_maintenance") == stored and audit.verify("monthly_maintenance").ok


def test_first_tail_and_a_since_window_read_only_the_newest_records(audit, monkeypatch):
    audit.append("evening_checklist", [item(n, completed_at=T0 + timedelta(days=n), run_id=f"scheduled__{n}")
                                       for n in range(1, 11)])
    assert audit.first("evening_checklist")["item"] == "item_1" and audit.first("weekly_maintenance") is None
    assert [r["seq"] for r in audit.tail("evening_checklist", 3)] == [8, 9, 10]
    monkeypatch.setattr(audit_module, "READ_BATCH", 2)  # records are fetched in parallel batches
    reads = []
    counting = AuditLog(audit.vault)
    counting._read = lambda key: reads.append(key) or AuditLog._read(counting, key)
    since = T0 + timedelta(days=8)
    found = counting.records("evening_checklist", since=since)
    assert [r["item"] for r in found] == ["item_8", "item_9", "item_10"]
    assert found == [r for r in audit.records("evening_checklist") if r["completed_at"] >= since.isoformat()]
    # 10, 9, 8, 7 and 6 (the first more than a day before `since`), plus the rest of 6's batch: not the whole chain
    assert len(reads) == 6


def test_a_since_window_keeps_a_late_answer_recorded_before_an_early_item_of_the_same_run(audit):
    # One run: its human item (recorded first) was answered 3 days after its automated item completed.
    early, late = T0 - timedelta(days=3), T0 + timedelta(hours=2)
    audit.append("monthly_maintenance", [item(1, completed_at=T0 - timedelta(days=40), run_id="older")])
    audit.append("monthly_maintenance", [item(2, item_kind="human", completed_at=late, run_id="slow"),
                                         item(3, completed_at=early, run_id="slow")])
    assert [r["item"] for r in audit.records("monthly_maintenance", since=T0)] == ["item_2"]
    assert [r["item"] for r in audit.records("monthly_maintenance", since=T0 - timedelta(days=41))] == [
        "item_1", "item_2", "item_3"]
