"""Ops console against the real stack: backups written with the vault API, checklist records appended
with AuditLog, status.json written by the verification task, and the plugin app mounted by Airflow's
own API server app (create_app), spoken to over HTTP (ASGI) with and without credentials."""

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.console import metrics as console_metrics
from gravitypm_ops.console import views as console_views
from gravitypm_ops.verification import tasks as verification_tasks
from tests.console_pages import Page, parse_exposition
from tests.console_seed import T0, seed


@pytest.fixture
def vault(prefixed_vault):
    return prefixed_vault  # tests/integration/conftest.py: its own prefix, named in the config Variable


@pytest.fixture
def seeded(vault):

    data = seed(vault)
    verification_tasks.write_status()  # status.json, as the verification DAG's last task writes it
    return data


# --- the views over the real vault ------------------------------------------------------------------
def test_checklists_page_shows_real_records_filters_them_and_verifies_the_chains(vault, seeded):
    now = datetime.now(UTC)
    status, html = console_views.checklists_view({}, lambda: vault, now)  # default: the last month
    page = Page(html)
    assert status == 200
    # evening_checklist, then weekly_maintenance's W48 and W47, each in chain order
    assert page.rows == ["passed", "passed", "warning", "passed", "failed", "missed"]
    assert page.all_text.count("chain verified") == 2
    assert "review_access_logs: evidence <ok>" in page.all_text and "ana" in page.all_text

    # The day of W48's records (T0 + 2 days + 2 h): after 22:00 UTC that is the day after T0 + 2 days.
    day2 = (T0 + timedelta(days=2, hours=2)).date().isoformat()
    status, html = console_views.checklists_view({"since": day2, "until": day2, "checklist": "weekly_maintenance"},
                                           lambda: vault, now)
    assert status == 200 and Page(html).rows == ["passed", "warning"]
    status, html = console_views.checklists_view({"outcome": "failed", "since": ""}, lambda: vault, now)
    assert Page(html).rows == ["failed"]


def test_a_tampered_record_shows_as_a_broken_chain(vault, seeded, stack):
    key = f"{vault.prefix}/audit/weekly_maintenance/{2:010d}.json"
    record = json.loads(stack.s3_client().get_object(Bucket=vault.bucket, Key=key)["Body"].read())
    stack.s3_client().put_object(Bucket=vault.bucket, Key=key, Body=json.dumps({**record, "outcome": "passed"}))
    _, html = console_views.checklists_view({"checklist": "weekly_maintenance"}, lambda: vault, datetime.now(UTC))
    text = Page(html).all_text
    assert "chain BROKEN" in text and "seq 2: content does not match its hash (record edited)" in text


def test_a_wiped_chain_reads_as_broken_in_the_metrics(vault, seeded, stack):
    s3 = stack.s3_client()  # delete markers only: the chain is no longer listed
    for listed in s3.list_objects_v2(Bucket=vault.bucket, Prefix=f"{vault.prefix}/audit/weekly_maintenance/")["Contents"]:
        s3.delete_object(Bucket=vault.bucket, Key=listed["Key"])
    m = parse_exposition(console_metrics.metrics_text(lambda: vault, datetime.now(UTC)))
    assert m[("gravitypm_checklist_chain_ok", (("checklist", "weekly_maintenance"),))] == 0
    assert m[("gravitypm_checklist_chain_ok", (("checklist", "evening_checklist"),))] == 1
    # A catalogue checklist without records yet (the morning one here) is still verified and exported.
    assert m[("gravitypm_checklist_chain_ok", (("checklist", "morning_checklist"),))] == 1


def test_backups_page_shows_each_backup_with_its_verification_and_the_status_file(vault, seeded):
    status, html = console_views.backups_view(lambda: vault, datetime.now(UTC))
    page = Page(html)
    assert status == 200
    db = html.split('data-kind="db"')[1].split("</section>")[0]
    assert f"Newest: <code>{seeded.failed_db_id}</code>" in db and "2.9 KiB" in db
    assert "failed" in db and "(failed: trial_restore)" in db
    assert db.count("<circle") == 3 and f"{seeded.db_ids[0]}: 1000 B, passed" in db
    assert "status.json (written" in db and f"newest verified: <code>{seeded.db_ids[1]}</code>" in db
    logs = html.split('data-kind="logs"')[1].split("</section>")[0]
    assert seeded.logs_id in logs and "not verified yet" in logs and "700 B" in logs
    assert "No committed backup." in html.split('data-kind="fs"')[1].split("</section>")[0]
    assert page.scripts == 0


def test_csv_export_has_the_filtered_records(vault, seeded):
    status, headers, body = console_views.checklists_csv_view({"checklist": "weekly_maintenance", "since": ""},
                                                        lambda: vault, datetime.now(UTC))
    rows = list(csv.DictReader(io.StringIO("".join(body))))
    assert status == 200 and headers["Content-Disposition"].startswith('attachment; filename="gravitypm-checklists_')
    assert [(r["seq"], r["outcome"], r["hash"]) for r in rows] == [
        (str(r["seq"]), r["outcome"], r["hash"]) for r in seeded.weekly]


# --- the plugin, mounted by Airflow's API server app ------------------------------------------------
@pytest.fixture(scope="module")
def api(airflow_db):
    """Airflow's own API server app (plugins from this repo's plugins/), spoken to over HTTP (ASGI)."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", uuid.uuid4().hex * 2)  # `airflow standalone` writes one to its cfg
        with TestClient(create_app("core"), base_url="http://airflow.test:8080") as client:
            yield client


@pytest.fixture(scope="module")
def token(api, airflow_db):
    from dev.airflow_api import AirflowAPI

    password = AirflowAPI.standalone_password(airflow_db)
    answer = api.post("/auth/token", json={"username": "admin", "password": password})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["access_token"]


ROUTES = ("/gravitypm/", "/gravitypm/checklists", "/gravitypm/checklists.csv", "/gravitypm/backups",
          "/gravitypm/metrics")


def test_plugin_is_registered_with_its_nav_entries(api, token):
    plugins = api.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"}).json()["plugins"]
    mine = next(p for p in plugins if p["name"] == "gravitypm_ops_console")
    assert mine["fastapi_apps"][0]["url_prefix"] == "/gravitypm"
    assert {(v["name"], v["href"], v["destination"]) for v in mine["external_views"]} == {
        ("Checklists", "gravitypm/checklists", "nav"), ("Backups", "gravitypm/backups", "nav")}


def test_every_route_refuses_a_request_without_credentials(api, stack):
    from plugins.gravitypm_ops_console import console_app

    served = {route.path for route in console_app().routes}
    assert {f"/gravitypm{p}" if p != "/" else "/gravitypm/" for p in served} <= set(ROUTES)  # none untested
    for path in ROUTES:
        answer = api.get(path, follow_redirects=False)
        assert (answer.status_code, answer.json()) == (401, {"detail": "Not authenticated"}), path
    assert api.get("/gravitypm/backups", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403


def test_with_a_token_the_pages_csv_and_metrics_are_served(api, token, seeded):
    auth = {"Authorization": f"Bearer {token}"}
    assert api.get("/gravitypm/", headers=auth, follow_redirects=False).headers["location"].endswith(
        "/gravitypm/checklists")
    page = api.get("/gravitypm/checklists?checklist=weekly_maintenance&outcome=&since=&until=", headers=auth)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert Page(page.text).rows == ["passed", "warning", "passed", "failed", "missed"]

    exported = api.get("/gravitypm/checklists.csv?outcome=missed&since=", headers=auth)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert [r["item"] for r in csv.DictReader(io.StringIO(exported.text))] == ["test_failover"]

    backups = api.get("/gravitypm/backups", headers=auth)
    assert backups.status_code == 200 and seeded.failed_db_id in backups.text

    metrics = api.get("/gravitypm/metrics", headers=auth)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    m = parse_exposition(metrics.text)
    assert m[("gravitypm_vault_up", ())] == 1
    assert m[("gravitypm_backup_size_bytes", (("kind", "db"),))] == 3000
    assert m[("gravitypm_backup_last_verification_success", (("kind", "db"),))] == 0
    assert m[("gravitypm_backup_last_verification_success", (("kind", "logs"),))] == -1
    assert m[("gravitypm_backup_present", (("kind", "fs"),))] == 0
    assert 0 <= m[("gravitypm_backup_age_seconds", (("kind", "logs"),))] < 600
    weekly = (("checklist", "weekly_maintenance"),)
    assert m[("gravitypm_checklist_items_total", (*weekly, ("outcome", "passed")))] == 2
    assert m[("gravitypm_checklist_last_run_items", (*weekly, ("outcome", "warning")))] == 1
    assert m[("gravitypm_checklist_chain_ok", weekly)] == 1
    assert 0 <= m[("gravitypm_checklist_metrics_age_seconds", ())] < 60


def test_the_session_cookie_of_the_ui_is_accepted(api, token, seeded):
    answer = api.get("/gravitypm/backups", cookies={"_token": token})
    assert answer.status_code == 200 and "Backups" in answer.text


def test_metrics_accept_the_scrape_token_and_nothing_else(api, seeded, monkeypatch):
    scrape = "scrape-" + uuid.uuid4().hex
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_METRICS", json.dumps({"conn_type": "generic", "password": scrape}))
    ok = api.get("/gravitypm/metrics", headers={"Authorization": f"Bearer {scrape}"})
    assert ok.status_code == 200 and parse_exposition(ok.text)[("gravitypm_vault_up", ())] == 1
    assert scrape not in ok.text
    assert api.get("/gravitypm/metrics", headers={"Authorization": f"Bearer {scrape}x"}).status_code == 403
    assert api.get("/gravitypm/metrics").status_code == 401
    # The scrape token opens /metrics only, never the pages.
    assert api.get("/gravitypm/backups", headers={"Authorization": f"Bearer {scrape}"}).status_code == 403


def test_an_unreachable_vault_is_an_error_box_not_a_500(api, token, stack, monkeypatch):
    from dev.stack import free_port

    dead = stack.connections()["gravitypm_aws"]
    dead["extra"] = {**dead["extra"], "endpoint_url": f"http://127.0.0.1:{free_port()}",
                     "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_AWS", json.dumps(dead))
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("/gravitypm/backups", "/gravitypm/checklists"):
        answer = api.get(path, headers=auth)
        assert answer.status_code == 503, path
        text = Page(answer.text).all_text
        assert "The vault cannot be read" in text and "Could not connect to the endpoint URL" in text
        assert stack.secrets.aws_secret_access_key not in answer.text and "Traceback" not in answer.text
    metrics = parse_exposition(api.get("/gravitypm/metrics", headers=auth).text)
    assert metrics == {("gravitypm_vault_up", ()): 0}


# --- broken objects in the vault: an error box naming the object, /metrics still answers --------------
@pytest.mark.parametrize("body, says", [
    (b"\x89PNG garbage", "not JSON"),
    (b'[{"written": "2026-11-27T00:00:00+00:00"}]', "left out: not a JSON object"),
    ({"written": "2026-11-27T00:00:00+00:00", "kinds": {"db": {"latest_id": "x"}}}, "left out: not signed"),
    # Signed but incomplete (a bug in our own writer, say): each unusable entry is named.
    (("signed", {"written": "2026-11-27T00:00:00+00:00", "kinds": {"db": {"latest_id": "x"}}}),
     ("kinds.db: 'bytes', 'age_hours', 'count', 'total_bytes', 'verified', 'last_verification', "
      "'latest_verified_id' missing")),
])
def test_a_broken_status_json_is_an_error_box_naming_it_not_a_500(api, token, seeded, vault, stack, body, says):
    signed = isinstance(body, tuple)
    if not isinstance(body, bytes):
        body = json.dumps(stack.signer().sign(body[1]) if signed else body).encode()
    stack.s3_client().put_object(Bucket=vault.bucket, Key=vault.status_key, Body=body)
    auth = {"Authorization": f"Bearer {token}"}
    answer = api.get("/gravitypm/backups", headers=auth)
    assert answer.status_code == 200, answer.text[:300]
    text = Page(answer.text).all_text
    assert f"{vault.status_key}: {says}" in text
    assert seeded.failed_db_id in text  # the backups themselves are still listed
    m = parse_exposition(api.get("/gravitypm/metrics", headers=auth).text)
    assert m[("gravitypm_vault_up", ())] == 1
    assert m[("gravitypm_vault_object_error", (("key", vault.status_key),))] == 1
    assert m[("gravitypm_backup_status_present", ())] == (1 if signed else 0)


def test_broken_manifests_and_audit_records_are_named_and_the_rest_still_served(api, token, seeded, vault, stack):
    s3 = stack.s3_client()
    manifest_key = next(k for k in vault.list_keys(f"{vault.prefix}/db/") if k.endswith(seeded.db_ids[0] + "/manifest.json"))
    s3.put_object(Bucket=vault.bucket, Key=manifest_key, Body=b"[]")
    record_key = f"{vault.prefix}/audit/weekly_maintenance/{2:010d}.json"
    record = json.loads(s3.get_object(Bucket=vault.bucket, Key=record_key)["Body"].read())
    del record["outcome"], record["completed_at"]
    s3.put_object(Bucket=vault.bucket, Key=record_key, Body=json.dumps(record))
    auth = {"Authorization": f"Bearer {token}"}

    backups = api.get("/gravitypm/backups", headers=auth)
    assert backups.status_code == 200
    text = Page(backups.text).all_text
    assert f"{manifest_key}: a JSON array, not an object" in text and seeded.failed_db_id in text

    page = api.get("/gravitypm/checklists?checklist=weekly_maintenance&since=", headers=auth)
    assert page.status_code == 200
    text = Page(page.text).all_text
    assert f"{record_key}: audit record: 'outcome', 'completed_at' missing" in text
    assert Page(page.text).rows == ["passed", "warning", "passed", "missed"]  # seq 2 left out, named above
    assert "chain BROKEN" in text  # and its hash no longer matches

    console_metrics._checklist_snapshots = console_metrics.Snapshots(console_metrics.CHECKLIST_METRICS_TTL)
    m = parse_exposition(api.get("/gravitypm/metrics", headers=auth).text)
    assert m[("gravitypm_vault_up", ())] == 1
    assert m[("gravitypm_vault_object_error", (("key", record_key),))] == 1
    assert m[("gravitypm_checklist_chain_ok", (("checklist", "weekly_maintenance"),))] == 0
