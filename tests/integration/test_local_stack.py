"""The local stack itself: each stand-in behaves like the real thing, through the same clients the DAGs use."""

import time
import urllib.error
import urllib.request

import pytest
from bson.raw_bson import RawBSONDocument

from dev import seed_data
from dev.stack import LocalStack
from tests.processes import alive, descendants


def test_mongo_is_seeded_and_reached_through_the_airflow_connection(stack):
    from airflow.providers.mongo.hooks.mongo import MongoHook

    db = MongoHook(mongo_conn_id="gravitypm_mongo").get_conn()[seed_data.DB_NAME]
    assert {c: db[c].count_documents({}) for c in seed_data.EXPECTED_COUNTS} == seed_data.EXPECTED_COUNTS
    assert 1000 <= sum(seed_data.EXPECTED_COUNTS.values()) <= 3000

    indexes = {c: {i["name"]: i for i in db[c].list_indexes()} for c in seed_data.INDEXES}
    assert indexes["users"]["email_unique"]["unique"] is True
    assert list(indexes["tasks"]["project_status"]["key"].items()) == [("project_id", 1), ("status", 1)]
    assert indexes["tasks"]["due_date_partial"]["partialFilterExpression"] == {"due_date": {"$exists": True}}
    assert indexes["activity"]["created_at_ttl"]["expireAfterSeconds"] == seed_data.ACTIVITY_TTL_SECONDS
    options = {c["name"]: c.get("options", {}) for c in db.list_collections()}
    assert "$jsonSchema" in options["users"].get("validator", {})


def test_every_bson_type_round_trips_from_the_seed(stack):
    client = stack.mongo_client(document_class=RawBSONDocument)
    db = client[seed_data.DB_NAME]
    seen = set()
    for collection in seed_data.EXPECTED_COUNTS:
        for raw in db[collection].find(batch_size=100):
            seen |= _bson_type_codes(raw.raw)
    # double, string, object, array, binary, ObjectId, bool, date, null, regex, code, int32,
    # timestamp, int64, decimal128, minkey, maxkey
    expected = {0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0D, 0x10, 0x11, 0x12, 0x13, 0xFF, 0x7F}
    assert expected <= seen, f"missing BSON type codes: {sorted(hex(c) for c in expected - seen)}"


def _bson_type_codes(data: bytes) -> set[int]:
    """Walk a BSON document's elements (recursing into documents and arrays) and collect type codes."""
    codes, pos, end = set(), 4, len(data) - 1
    while pos < end:
        code = data[pos]
        codes.add(code)
        name_end = data.index(b"\x00", pos + 1)
        pos = name_end + 1
        size = _element_size(code, data, pos)
        if code in (0x03, 0x04):
            codes |= _bson_type_codes(data[pos : pos + size])
        pos += size
    return codes


def _element_size(code: int, data: bytes, pos: int) -> int:
    int32 = lambda at: int.from_bytes(data[at : at + 4], "little", signed=True)  # noqa: E731
    fixed = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16, 0xFF: 0, 0x7F: 0}
    if code in fixed:
        return fixed[code]
    if code in (0x02, 0x0D, 0x0E):
        return 4 + int32(pos)
    if code in (0x03, 0x04, 0x0F):
        return int32(pos)
    if code == 0x05:
        return 5 + int32(pos)
    if code == 0x0B:
        first = data.index(b"\x00", pos)
        return data.index(b"\x00", first + 1) + 1 - pos
    raise AssertionError(f"unexpected BSON type code {code:#x}")


def test_mongo_refuses_a_wrong_password(stack):
    import pymongo

    client = pymongo.MongoClient(
        host="127.0.0.1", port=stack.ports["mongo"], username=stack.secrets.mongo_user, password="wrong",
        authSource="admin", directConnection=True, serverSelectionTimeoutMS=3000,
    )
    with pytest.raises(pymongo.errors.OperationFailure):
        client[seed_data.DB_NAME].users.find_one()


def test_vault_bucket_exists_with_versioning(stack):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3 = S3Hook(aws_conn_id="gravitypm_aws").get_conn()
    assert s3.get_bucket_versioning(Bucket=stack.vault_bucket)["Status"] == "Enabled"


def test_production_host_tree_health_endpoints_and_growing_logs(stack):
    root = stack.app_root
    for rel in ("docker-compose.production.yml", ".env", "nginx/nginx.conf", "config/app.json", "uploads"):
        assert (root / rel).exists(), rel
    assert "JWT_SECRET=" in (root / ".env").read_text()
    for path in ("/health", "/health/db", "/health/redis"):
        with urllib.request.urlopen(stack.url("host") + path, timeout=5) as response:
            assert response.status == 200, path
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(stack.url("host") + "/nope", timeout=5)
    assert missing.value.code == 404
    log = root / "logs" / "app.log"
    before = log.stat().st_size
    time.sleep(2.5)
    assert log.stat().st_size > before


def test_slack_receiver_records_hook_posts_and_rejects_empty_ones(slack):
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    SlackWebhookHook(slack_webhook_conn_id="gravitypm_slack").send(text="hello from the test")
    assert slack.texts() == ["hello from the test"]
    with pytest.raises(Exception, match="no_text"):
        SlackWebhookHook(slack_webhook_conn_id="gravitypm_slack").send(text="")
    assert len(slack.messages()) == 1


def test_health_db_reports_503_when_mongo_is_down_and_stop_leaves_nothing(tmp_path):
    with LocalStack(tmp_path / "stack") as own:
        started = {pid for proc in own.procs.values() for pid in {proc.pid} | descendants(proc.pid)}
        own.stop("mongo")
        with pytest.raises(urllib.error.HTTPError) as down:
            urllib.request.urlopen(own.url("host") + "/health/db", timeout=5)
        assert down.value.code == 503
    assert [pid for pid in started if alive(pid)] == []


def test_a_second_start_reuses_the_state_directory(tmp_path):
    state = tmp_path / "stack"
    with LocalStack(state) as first:
        secrets = first.secrets
        first.mongo_client()[seed_data.DB_NAME].users.update_one({}, {"$set": {"touched": True}})
    with LocalStack(state) as second:
        assert second.secrets == secrets
        db = second.mongo_client()[seed_data.DB_NAME]
        assert db.users.count_documents({}) == seed_data.EXPECTED_COUNTS["users"]  # not seeded twice
        assert db.users.count_documents({"touched": True}) == 1  # data survived the restart
