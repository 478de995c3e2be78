"""gravitypm_db_backup and the MongoDB backup/restore library, against the real local stack."""

import gzip
import io
import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bson import Binary
from bson.raw_bson import RawBSONDocument

from dev import seed_data
from gravitypm_ops.backup import mongo as backup_mongo
from gravitypm_ops.config import parse_config
from gravitypm_ops.formats.mongo_archive.format import metadata_json, parse_metadata_json
from gravitypm_ops.formats.mongo_archive.reader import ArchiveReader
from gravitypm_ops.vault.store import Vault
from tests.documents import every_type_docs
from tests.fault_proxy import FaultProxy

DAG_ID = "gravitypm_db_backup"
T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


@pytest.fixture
def source_db(stack):
    """A small database with every feature a restore must carry over."""
    client = stack.mongo_client()
    name = f"roundtrip_{uuid.uuid4().hex[:6]}"
    db = client[name]
    db.create_collection("items", validator={"$jsonSchema": {"bsonType": "object", "required": ["email"]}})
    db.items.insert_many(every_type_docs())
    db.items.create_index("email", unique=True, name="email_unique")
    db.items.create_index([("project", 1), ("status", -1)], name="project_status")
    db.items.create_index("expires", expireAfterSeconds=10 * 365 * 86400, name="expires_ttl")
    db.items.create_index("due", partialFilterExpression={"due": {"$exists": True}}, name="due_partial")
    db.create_collection("empty")
    db.create_collection("sorted", collation={"locale": "en", "strength": 2})
    db.sorted.insert_many([{"_id": i, "name": n} for i, n in enumerate(["b", "A", "c"])])
    yield db
    client.drop_database(name)


def raw_docs(db, collection: str) -> dict:
    coll = db.get_collection(collection, codec_options=backup_mongo.RAW)
    return {RawBSONDocument(doc.raw)["_id"]: doc.raw for doc in coll.find()}


def index_specs(db, collection: str) -> dict:
    return {i["name"]: {k: v for k, v in i.items() if k not in ("v", "ns")} for i in db[collection].list_indexes()}


def test_dump_writes_a_mongodump_archive_with_metadata_and_every_document(stack, source_db):
    out = io.BytesIO()
    content = backup_mongo.dump(stack.mongo_client(), [source_db.name], out)

    reader = ArchiveReader(gzip.GzipFile(fileobj=io.BytesIO(out.getvalue())))
    metas = {ns.collection: ns for ns in reader.namespaces}
    assert set(metas) == {"items", "empty", "sorted"}
    items_meta = parse_metadata_json(metadata_json(metas["items"]))
    assert {i["name"] for i in items_meta["indexes"]} == {"_id_", "email_unique", "project_status", "expires_ttl", "due_partial"}
    assert "$jsonSchema" in items_meta["options"]["validator"]
    docs = {}
    for _db, coll, raw in reader.iter_documents():
        docs.setdefault(coll, []).append(raw)
    assert sorted(docs["items"]) == sorted(raw_docs(source_db, "items").values())
    assert "empty" not in docs
    counts = {c: v["documents"] for c, v in content["databases"][source_db.name].items()}
    assert counts == {"items": 40, "empty": 0, "sorted": 3}
    assert content["consistency"]["mode"] == "fuzzy"


def test_round_trip_restores_documents_indexes_and_options_identically(stack, source_db):
    client = stack.mongo_client()
    out = io.BytesIO()
    backup_mongo.dump(client, [source_db.name], out)
    target = client[source_db.name + "_restored"]
    target.create_collection("not_in_backup")
    target.not_in_backup.insert_one({"keep": "me"})
    target.items.insert_one({"_id": "stale", "email": "stale@example.com"})  # replaced, like --drop
    try:
        report = backup_mongo.restore(io.BytesIO(out.getvalue()), client, {source_db.name: target.name})

        for coll in ("items", "empty", "sorted"):
            assert raw_docs(target, coll) == raw_docs(source_db, coll), coll
            assert index_specs(target, coll) == index_specs(source_db, coll), coll
        options = lambda db: {c["name"]: c.get("options", {}) for c in db.list_collections()}  # noqa: E731
        for coll in ("items", "empty", "sorted"):
            assert options(target)[coll] == options(source_db)[coll], coll
        assert report.restored[target.name] == {"items": 40, "empty": 0, "sorted": 3}
        assert report.left_alone == {target.name: ["not_in_backup"]}
        assert target.not_in_backup.find_one({}, {"_id": 0}) == {"keep": "me"}
        assert not [c for c in target.list_collection_names() if c.startswith(backup_mongo.STAGING_PREFIX)]
    finally:
        client.drop_database(target.name)


def test_a_corrupt_archive_leaves_the_target_as_it_was(stack, source_db):
    client = stack.mongo_client()
    out = io.BytesIO()
    backup_mongo.dump(client, [source_db.name], out)
    raw = bytearray(gzip.decompress(out.getvalue()))
    position = raw.find(b"doc 7")  # inside a document of `items`
    raw[position] ^= 0xFF
    target = client[source_db.name + "_target"]
    target.items.insert_one({"_id": "precious", "email": "precious@example.com"})
    try:
        with pytest.raises(Exception, match="(?i)crc"):
            backup_mongo.restore(io.BytesIO(gzip.compress(bytes(raw))), client, {source_db.name: target.name})
        assert list(target.items.find({}, {"email": 1})) == [{"_id": "precious", "email": "precious@example.com"}]
        assert sorted(target.list_collection_names()) == ["items"]  # staging cleaned up
    finally:
        client.drop_database(target.name)


def test_the_dag_backs_up_the_seeded_database_and_announces_the_asset(run_dag, stack, slack, capfd, caplog):
    result = run_dag(DAG_ID, {"mongo_databases": [seed_data.DB_NAME]})

    assert result.state == "success", result.task_states
    summary = result.xcom("dump_to_vault")
    vault = Vault(stack.vault_bucket, "production", stack.s3_client(), signer=stack.signer())
    manifest = vault.resolve("db", summary["backup_id"])
    counts = {c: v["documents"] for c, v in manifest["content"]["databases"][seed_data.DB_NAME].items()}
    assert counts == seed_data.EXPECTED_COUNTS
    assert manifest["source"]["databases"] == [seed_data.DB_NAME]
    assert manifest["artifacts"][0]["name"] == backup_mongo.ARTIFACT_NAME
    indexes = {i["name"] for i in manifest["content"]["databases"][seed_data.DB_NAME]["activity"]["indexes"]}
    assert "created_at_ttl" in indexes

    # The artifact reads back intact and parses as a mongodump archive with every document.
    with vault.open_artifact(manifest, backup_mongo.ARTIFACT_NAME) as body:
        reader = ArchiveReader(gzip.GzipFile(fileobj=body))
        assert sum(1 for _ in reader.iter_documents()) == sum(seed_data.EXPECTED_COUNTS.values())
        body.verify()

    events = asset_events("gravitypm://vault/db", result.dag_run.run_id)
    assert [e["backup_id"] for e in events] == [summary["backup_id"]]
    assert result.xcom("apply_retention")["kind"] == "db"

    # No secret anywhere a user or attacker could look: task logs, XCom, manifest, Slack.
    captured = capfd.readouterr()
    logs = "\n".join([captured.out, captured.err, caplog.text, task_log_files()])
    assert f"backup {summary['backup_id']} committed" in logs  # the task logs really were captured
    assert "dumped 2260 documents" in logs
    haystack = "\n".join([
        logs, json.dumps(manifest), json.dumps(summary), json.dumps(events),
        json.dumps(result.xcom("apply_retention")), json.dumps(slack.messages()),
    ])
    for secret in (stack.secrets.mongo_password, stack.secrets.aws_secret_access_key, stack.secrets.slack_token,
                   stack.secrets.signing_key, stack.secrets.age_ops_identity, stack.secrets.age_recovery_identity):
        assert secret not in haystack


@pytest.mark.parametrize("slack_down", ["connection refused", "rate limited"])
def test_an_undeliverable_failure_alert_keeps_the_webhook_token_out_of_every_log(
    run_dag, stack, monkeypatch, capfd, caplog, slack_down
):
    """Issue 14 item 3: preflight fails, its FailureAlert cannot reach Slack (slack_sdk retries, then
    gives up); the webhook URL slack_sdk logs while retrying never shows the token."""
    import logging
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class RateLimited(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b"rate_limited")

    server = ThreadingHTTPServer(("127.0.0.1", 0), RateLimited)
    port = server.server_address[1]
    if slack_down == "connection refused":
        server.server_close()
    else:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = {**stack.connections()["gravitypm_slack"], "host": f"http://127.0.0.1:{port}/services"}
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_SLACK", json.dumps(conn))
    caplog.set_level(logging.DEBUG)
    try:
        result = run_dag(DAG_ID, {"vault_bucket": "no-such-vault"})
    finally:
        if slack_down != "connection refused":
            server.shutdown()
            server.server_close()

    assert result.task_states["preflight"] == "failed"
    captured = capfd.readouterr()
    logs = f"{captured.out}\n{captured.err}\n{caplog.text}\n{task_log_files()}"
    assert "SlackDeliveryError" in logs or "Slack alert not delivered" in logs  # the failure was logged
    assert stack.secrets.slack_token not in logs
    assert stack.secrets.slack_token.rsplit("/", 1)[1] not in logs


def asset_events(uri: str, run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri, AssetEvent.source_run_id == run_id).all()
        )
        return [dict(r.extra) for r in rows]


def task_log_files() -> str:
    from pathlib import Path

    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()) if logs.exists() else ""


def test_rerunning_the_same_dag_run_returns_the_committed_backup(run_dag, stack):
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    first = run_dag(DAG_ID, {"mongo_databases": [seed_data.DB_NAME]}, logical_date=when, run_after=when)
    second = run_dag(DAG_ID, {"mongo_databases": [seed_data.DB_NAME]}, logical_date=when, run_after=when)

    assert first.dag_run.run_id == second.dag_run.run_id
    assert first.state == second.state == "success"
    assert first.xcom("dump_to_vault")["backup_id"] == second.xcom("dump_to_vault")["backup_id"]
    vault = Vault(stack.vault_bucket, "production", stack.s3_client(), signer=stack.signer())
    ids = [m["backup_id"] for m in vault.list_backups("db") if m["run_id"] == first.dag_run.run_id]
    assert len(ids) == 1


@pytest.mark.parametrize(
    "case, overrides, env, message",
    [
        ("bucket missing", {"vault_bucket": "no-such-vault"}, {}, "'no-such-vault' does not exist"),
        ("mongo unreachable", {}, {"port": 1}, "MongoDB (gravitypm_mongo) unusable"),
        ("mongo credentials wrong", {}, {"password": "wrong-password"}, "MongoDB (gravitypm_mongo) unusable"),
    ],
)
def test_preflight_fails_fast_with_a_clear_message_and_tells_slack(
    run_dag, stack, slack, monkeypatch, case, overrides, env, message
):
    if env:
        conn = {**stack.connections()["gravitypm_mongo"], **env}
        monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_MONGO", json.dumps(conn))
    vault = Vault(stack.vault_bucket, "production", stack.s3_client(), signer=stack.signer())
    before = len(vault.list_backups("db"))

    result = run_dag(DAG_ID, overrides)

    assert result.state == "failed"
    assert result.task_states["preflight"] == "failed"
    assert result.task_states["dump_to_vault"] == "upstream_failed"
    assert len(vault.list_backups("db")) == before  # nothing committed
    alert = next(t for t in slack.texts() if "preflight" in t)
    assert "[Critical]" in alert and message in alert
    assert "wrong-password" not in alert and stack.secrets.mongo_password not in alert


def test_s3_failing_mid_upload_commits_nothing_and_leaves_no_multipart_upload(stack):
    import boto3
    from botocore.config import Config

    client = stack.mongo_client()
    db = client["bulk_" + uuid.uuid4().hex[:6]]
    # ~12 MiB of incompressible data: more than one 8 MiB upload part.
    db.blobs.insert_many([{"_id": i, "blob": Binary(os.urandom(1 << 20))} for i in range(12)])
    try:
        fails_part_2 = lambda method, path: method == "PUT" and "partNumber=2" in path  # noqa: E731
        with FaultProxy(stack.ports["s3"], fails_part_2) as proxy:
            s3 = boto3.client(
                "s3", endpoint_url=proxy.url, region_name="us-east-1",
                aws_access_key_id=stack.secrets.aws_access_key_id,
                aws_secret_access_key=stack.secrets.aws_secret_access_key,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}),
            )
            vault = Vault(stack.vault_bucket, "faults", s3)
            cfg = parse_config({"mongo_databases": [db.name], "vault_bucket": stack.vault_bucket})
            with pytest.raises(Exception, match="InternalError|injected"):
                backup_mongo.run_backup(cfg, vault, client, dag_id=DAG_ID, run_id="fault_1", run_after=T0)
            assert proxy.failed, "the fault was never injected"

        direct = stack.s3_client()  # look at the server itself, past the proxy
        assert direct.list_multipart_uploads(Bucket=stack.vault_bucket, Prefix="faults/").get("Uploads", []) == []
        assert Vault(stack.vault_bucket, "faults", direct).list_backups("db") == []
    finally:
        client.drop_database(db.name)


def test_s3_dying_mid_upload_reports_the_upload_error_and_logs_the_failed_clean_up(stack, caplog):
    """Issue 14 item 9: the abort of the multipart upload fails too (S3 is gone); the error raised
    is still the upload's, and the clean-up failure is logged beside it (and noted on the error)."""
    import logging
    import threading

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = stack.mongo_client()
    db = client["bulk_" + uuid.uuid4().hex[:6]]
    db.blobs.insert_many([{"_id": i, "blob": Binary(os.urandom(1 << 20))} for i in range(12)])  # > 1 part
    dead, stopping = threading.Event(), threading.Event()

    def s3_dies_at_part_2(method, path):
        if dead.is_set():  # S3 is gone: this connection drops, new ones are refused
            if not stopping.is_set():
                stopping.set()
                threading.Thread(target=lambda: (proxy.server.shutdown(), proxy.server.server_close())).start()
            raise ConnectionResetError("S3 is down")
        if method == "PUT" and "partNumber=2" in path:
            dead.set()
            return True  # the part itself gets a 500 InternalError
        return False

    caplog.set_level(logging.INFO)
    try:
        with FaultProxy(stack.ports["s3"], s3_dies_at_part_2) as proxy:
            s3 = boto3.client(
                "s3", endpoint_url=proxy.url, region_name="us-east-1",
                aws_access_key_id=stack.secrets.aws_access_key_id,
                aws_secret_access_key=stack.secrets.aws_secret_access_key,
                config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2),
            )
            vault = Vault(stack.vault_bucket, "faults-dead", s3)
            cfg = parse_config({"mongo_databases": [db.name], "vault_bucket": stack.vault_bucket})
            with pytest.raises(ClientError) as raised:
                backup_mongo.run_backup(cfg, vault, client, dag_id=DAG_ID, run_id="fault_dead", run_after=T0)

        assert raised.value.operation_name == "UploadPart"  # the cause, not AbortMultipartUpload's error
        assert raised.value.response["Error"]["Code"] == "InternalError"
        notes = "\n".join(getattr(raised.value, "__notes__", []))
        assert "aborting the multipart upload of faults-dead/db/" in notes
        failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "failed too" in r.getMessage()]
        assert any("aborting the multipart upload" in m and "UploadPart" in m for m in failures), failures
    finally:
        client.drop_database(db.name)
        direct = stack.s3_client()  # S3 is back: clear what the dead one left behind
        for upload in direct.list_multipart_uploads(Bucket=stack.vault_bucket, Prefix="faults-dead/").get("Uploads", []):
            direct.abort_multipart_upload(Bucket=stack.vault_bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def test_the_dag_declares_its_pool_and_asset_and_no_deadline(dagbag):
    dag = dagbag.get_dag(DAG_ID)
    assert dag.schedule.expression == "0 */6 * * *"
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.task_dict["dump_to_vault"].pool == "gravitypm_db"
    assert [a.uri for a in dag.task_dict["dump_to_vault"].outlets] == ["gravitypm://vault/db"]
    # No DeadlineAlert: Airflow 3.3.2's `airflow dags test` crashes on one after every task succeeded;
    # lateness is caught by dump_to_vault's execution timeout and the hourly freshness audit.
    assert not dag.deadline
    assert dag.task_dict["dump_to_vault"].execution_timeout == timedelta(hours=2)
    assert dag.task_dict["preflight"].retries == 0


def test_a_failure_while_swapping_collections_in_restores_the_old_ones(stack, source_db, monkeypatch):
    client = stack.mongo_client()
    out = io.BytesIO()
    backup_mongo.dump(client, [source_db.name], out)
    target = client[source_db.name + "_swap"]
    target.items.insert_one({"_id": "old", "email": "old@example.com"})
    target.sorted.insert_one({"_id": "old sorted"})
    real_rename, calls = backup_mongo._rename, []

    def rename_failing_late(db, source, to):  # the 4th rename: after one collection was swapped in
        calls.append((source, to))
        if len(calls) == 4:
            raise RuntimeError("connection lost during the swap")
        real_rename(db, source, to)

    monkeypatch.setattr(backup_mongo, "_rename", rename_failing_late)
    try:
        with pytest.raises(RuntimeError, match="during the swap"):
            backup_mongo.restore(io.BytesIO(out.getvalue()), client, {source_db.name: target.name})
        assert list(target.items.find()) == [{"_id": "old", "email": "old@example.com"}]
        assert list(target.sorted.find()) == [{"_id": "old sorted"}]
        assert sorted(target.list_collection_names()) == ["items", "sorted"]  # no staging, no leftovers
    finally:
        client.drop_database(target.name)
