"""Ops console pages, CSV and /metrics text: pure rendering over plain lists of records and manifests."""

import csv
import io
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from gravitypm_ops.checklists.audit import record_hash, validate_record
from gravitypm_ops.console import backups as console_backups
from gravitypm_ops.console import history as console_history
from gravitypm_ops.console import html as console_html
from gravitypm_ops.console import metrics as console_metrics
from gravitypm_ops.console import views as console_views
from gravitypm_ops.console.history import FilterError, HistoryFilter
from tests.console_pages import Page, parse_exposition

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def chain(checklist: str, items: list[dict]) -> list[dict]:
    """Records as AuditLog.append stores them (validated, seq, prev_hash, hash)."""
    out, prev = [], ""
    for seq, item in enumerate(items, 1):
        record = {**validate_record(checklist, item), "seq": seq, "prev_hash": prev}
        record["hash"] = prev = record_hash(record)
        out.append(record)
    return out


def item(name: str, outcome: str, completed: datetime, period: str, run: str, **extra) -> dict:
    return {
        "period": period, "run_id": run, "dag_id": "gravitypm_x", "item": name, "title": name.replace("_", " ").title(),
        "item_kind": "automated", "outcome": outcome, "actor": "automation",
        "started_at": completed - timedelta(seconds=30), "completed_at": completed,
        "evidence": {"summary": f"{name} evidence", "links": [{"label": "task log", "url": "http://airflow/log?x=1&y=2"}]},
        **extra,
    }


WEEK47 = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
WEEK48 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
WEEKLY = chain("weekly_maintenance", [
    item("review_dashboards", "passed", WEEK47, "2026-W47", "scheduled__w47"),
    item("check_backup_integrity", "failed", WEEK47 + timedelta(minutes=1), "2026-W47", "scheduled__w47"),
    item("review_dashboards", "passed", WEEK48, "2026-W48", "scheduled__w48"),
    item("test_failover", "missed", WEEK48 + timedelta(hours=4), "2026-W48", "scheduled__w48",
         item_kind="human", actor="automation"),
    item("review_access_logs", "warning", WEEK48 + timedelta(hours=1), "2026-W48", "scheduled__w48", actor="ana"),
])
EVENING = chain("evening_checklist", [item("disk_space", "passed", WEEK48 - timedelta(days=1), "2026-11-26", "s__26")])
RECORDS = WEEKLY + EVENING


@dataclass
class Report:  # the shape of audit.ChainReport
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    head_hash: str = "ab" * 32


CHAINS = {"weekly_maintenance": Report(True, 5), "evening_checklist": Report(True, 1)}




# --- filters ------------------------------------------------------------------------------------
def test_no_filter_means_the_last_month_and_a_full_query_round_trips():
    default = HistoryFilter.from_query({}, NOW.date())
    assert default == HistoryFilter(since=date(2026, 10, 28))
    f = HistoryFilter.from_query(
        {"since": "2026-11-01", "until": "2026-11-27", "checklist": "weekly_maintenance", "outcome": "failed"},
        NOW.date())
    assert HistoryFilter.from_query(dict(re.findall(r"(\w+)=([^&]*)", f.query())), NOW.date()) == f
    assert HistoryFilter.from_query({"since": "", "until": ""}, NOW.date()) == HistoryFilter()  # cleared: all time


def test_date_range_is_inclusive_whole_utc_days():
    args = HistoryFilter(since=date(2026, 11, 20), until=date(2026, 11, 20)).records_args()
    assert args["since"] == datetime(2026, 11, 20, tzinfo=UTC)
    assert args["until"] == datetime(2026, 11, 20, 23, 59, 59, 999999, tzinfo=UTC)
    assert args["checklist"] is None and args["outcome"] is None


@pytest.mark.parametrize("query, message", [
    ({"since": "27/11/2026"}, "'since' must be a date like 2026-11-27"),
    ({"since": "2026-11-27", "until": "2026-11-01"}, "is after 'until'"),
    ({"outcome": "ok"}, "outcome 'ok' is not one of passed"),
    ({"checklist": "../etc"}, "is not a checklist name"),
])
def test_bad_filters_are_refused_with_the_reason(query, message):
    with pytest.raises(FilterError, match=message):
        HistoryFilter.from_query(query, NOW.date())


def test_a_bad_filter_is_a_400_page_that_says_why_without_touching_the_vault():
    def no_vault():
        raise AssertionError("the vault must not be opened for a bad filter")

    status, html = console_views.checklists_view({"outcome": "<b>ok</b>"}, no_vault, NOW)
    assert status == 400
    page = Page(html)
    assert "Bad filter" in page.all_text and "outcome '<b>ok</b>' is not one of" in page.all_text
    assert "<b>ok</b>" not in html  # shown as text, not markup


# --- Checklists page ------------------------------------------------------------------------------
def test_history_is_grouped_by_checklist_then_period_newest_first_item_by_item():
    f = HistoryFilter(since=date(2026, 11, 1))
    page = Page(console_history.render_checklists(RECORDS, CHAINS, f, ["evening_checklist", "weekly_maintenance"]))
    text = page.all_text
    assert page.scripts == 0
    assert text.index("evening_checklist") < text.index("weekly_maintenance")
    assert text.index("2026-W48") < text.index("2026-W47")  # newest period first
    # W48 rows in chain (seq) order, then W47's.
    assert page.rows == ["passed", "passed", "missed", "warning", "passed", "failed"]
    assert "6 records: 3 passed, 1 failed, 1 warning, 1 missed" in text
    for shown in ("Review Access Logs", "ana", "2026-11-27 10:00:00 UTC", "review_access_logs evidence",
                  "chain verified", "scheduled__w48"):
        assert shown in text, shown
    assert "http://airflow/log?x=1&y=2" in page.links  # &amp; in the markup, the real URL to the browser


def test_filter_form_keeps_the_choices_and_the_csv_link_carries_them():
    f = HistoryFilter(date(2026, 11, 20), date(2026, 11, 27), "weekly_maintenance", "failed")
    html = console_history.render_filter_form(f, ["evening_checklist", "weekly_maintenance"])
    assert 'name="since" value="2026-11-20"' in html and 'name="until" value="2026-11-27"' in html
    assert '<option value="weekly_maintenance" selected>' in html and '<option value="failed" selected>' in html
    csv_link = next(link for link in Page(html).links if link.startswith("checklists.csv"))
    assert csv_link == "checklists.csv?" + f.query()


def test_a_broken_chain_is_shown_with_every_problem():
    broken = {"weekly_maintenance": Report(False, 4, ["seq 2 missing (deleted record)", "seq 3: <edited>"])}
    text = Page(console_history.render_checklists(WEEKLY, broken, HistoryFilter(), [])).all_text
    assert "chain BROKEN" in text and "seq 2 missing (deleted record)" in text and "seq 3: <edited>" in text


def test_everything_from_a_record_is_escaped_and_only_http_links_are_clickable():
    evil = chain("weekly_maintenance", [item(
        "x", "passed", WEEK48, "2026-W48", "r", title='<script>alert(1)</script>', actor='"><img src=x onerror=y>',
        evidence={"summary": "</td></tr></table><b>boom</b>", "links": [
            {"label": "click", "url": "javascript:alert(1)"},
            {"label": "vault object", "url": "s3://gravitypm-vault/production/audit/x"},
            {"label": "log", "url": 'https://airflow/log?a="b"'},
            {"label": "broken", "url": "http://[::1"},
        ]})])
    html = console_history.render_checklists(evil, {}, HistoryFilter(), [])
    page = Page(html)  # balanced: the summary did not close the table
    assert page.scripts == 0 and "<img" not in html and "<b>boom" not in html
    assert "<script>alert(1)</script>" in page.all_text  # shown literally
    assert "javascript:alert(1)" not in page.links and "javascript:alert(1)" in page.all_text
    assert 'https://airflow/log?a="b"' in page.links
    assert "s3://gravitypm-vault/production/audit/x" in page.all_text
    assert "http://[::1" not in page.links and "broken: http://[::1" in page.all_text


# --- CSV ----------------------------------------------------------------------------------------------
def test_csv_has_a_row_per_record_with_evidence_and_chain_fields():
    body = "".join(console_history.records_csv(RECORDS))
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["outcome"] for r in rows] == [r["outcome"] for r in RECORDS]
    first = rows[0]
    assert first["checklist"] == "weekly_maintenance" and first["period"] == "2026-W47" and first["seq"] == "1"
    assert first["evidence_summary"] == "review_dashboards evidence"
    assert first["evidence_links"] == "task log <http://airflow/log?x=1&y=2>"
    assert first["hash"] == RECORDS[0]["hash"] and rows[1]["prev_hash"] == RECORDS[0]["hash"]
    assert first["completed_at"] == "2026-11-20T18:00:00+00:00"


def test_csv_defuses_spreadsheet_formulas():
    evil = chain("weekly_maintenance", [item("x", "passed", WEEK48, "2026-W48", "r", title="=HYPERLINK(\"http://x\")",
                                             actor="+1", evidence={"summary": "@SUM(A1)", "links": []})])
    row = list(csv.DictReader(io.StringIO("".join(console_history.records_csv(evil)))))[0]
    assert row["title"] == "'=HYPERLINK(\"http://x\")" and row["actor"] == "'+1"
    assert row["evidence_summary"] == "'@SUM(A1)"


def test_csv_filename_names_the_filters():
    f = HistoryFilter(date(2026, 11, 1), None, "weekly_maintenance", "failed")
    name = "gravitypm-checklists_weekly_maintenance_failed_2026-11-01_2026-11-27.csv"
    assert console_history.csv_filename(f, NOW.date()) == name


# --- Backups page ---------------------------------------------------------------------------------
def manifest(kind: str, when: datetime, size: int, verification: str | None, **extra) -> dict:
    backup_id = f"{when:%Y%m%dT%H%M%SZ}-{abs(hash((kind, when))) % 10**10:010x}"
    record = None if verification is None else {
        "status": verification, "finished": (when + timedelta(minutes=20)).isoformat(),
        "checks": [{"name": "artifacts", "status": "passed"},
                   {"name": "trial_restore", "status": "passed" if verification == "passed" else "failed"}],
    }
    return {"kind": kind, "backup_id": backup_id, "finished": (when + timedelta(minutes=5)).isoformat(),
            "artifacts": [{"size": size - 100}, {"size": 100}], "verification": record,
            "dag_id": f"gravitypm_{kind}_backup", "run_id": f"scheduled__{when:%H}", **extra}


DB = [manifest("db", NOW - timedelta(hours=h), 1000 * (30 - h), v)
      for h, v in ((18, "passed"), (12, "passed"), (6, "failed"), (1, None))]


def test_backups_page_shows_newest_backup_age_size_verification_and_a_chart_per_kind():
    status = {"written": (NOW - timedelta(minutes=30)).isoformat(), "kinds": {
        "db": {"latest_id": DB[-1]["backup_id"], "bytes": 29000, "latest_verified_id": DB[1]["backup_id"],
               "last_verification": None, "age_hours": 0.4, "count": 4, "total_bytes": 1, "verified": False}}}
    html = console_backups.render_backups({"db": DB, "fs": []}, status, NOW)
    page = Page(html)
    text = page.all_text
    assert page.scripts == 0
    assert f"Newest: {DB[-1]['backup_id']}, age 55 min, 28.3 KiB, not verified yet (4 backups," in text
    assert "failed 2026-11-27 06:20:00 UTC (failed: trial_restore)" in text
    assert f"Newest verified: {DB[1]['backup_id']}, age 11 h 55 min" in text
    assert "status.json (written 2026-11-27 11:30:00 UTC (30 min ago)): latest" in text
    assert f"newest verified: {DB[1]['backup_id']}" in text
    assert text.count("No committed backup.") == 3  # fs, config, logs
    assert html.count("<svg") == 1 and html.count("<circle") == 4
    # The table lists newest first.
    assert text.index(DB[-1]["backup_id"] + " 2026-11-27 11:05") < text.index(DB[0]["backup_id"] + " 2026-11-26 18:05")


def test_size_chart_places_points_by_time_and_size():
    svg = console_backups.size_chart(DB, width=640, height=150)
    circles = [tuple(map(float, c)) for c in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg)]
    xs, ys = [c[0] for c in circles], [c[1] for c in circles]
    assert xs == sorted(xs) and xs[0] == 70 and xs[-1] == 630  # oldest left, newest right
    assert ys == sorted(ys, reverse=True) and ys[-1] == 10  # the biggest (newest) at the top
    assert "#e53e3e" in svg and "#38a169" in svg and "#a0aec0" in svg  # failed, passed, never verified
    assert "No backups yet" in console_backups.size_chart([])
    single = console_backups.size_chart(DB[:1])
    assert re.search(r'<circle cx="350.0"', single)  # one point: centred


def test_no_status_file_yet_is_said_plainly():
    assert "No status.json yet" in Page(console_backups.render_backups({}, None, NOW)).all_text


def test_vault_unreachable_is_an_error_box_not_a_stack_trace_and_leaks_no_secret():
    def unreachable():
        raise ConnectionError("Could not connect to the endpoint URL: https://key:hunter2@s3.local/ password=hunter2")

    for status, html in (console_views.backups_view(unreachable, NOW),
                         console_views.checklists_view({"outcome": "failed"}, unreachable, NOW)):
        assert status == 503
        page = Page(html)
        assert "The vault cannot be read" in page.all_text and "Could not connect to the endpoint URL" in page.all_text
        assert "hunter2" not in html and "Traceback" not in html
    status, headers, body = console_views.checklists_csv_view({}, unreachable, NOW)
    text = "".join(body)
    assert status == 503 and headers["Content-Type"].startswith("text/plain") and "hunter2" not in text
    assert "The vault cannot be read" in text


def test_fmt_age_and_bytes():
    assert [console_html.fmt_age(s) for s in (5, 125, 3 * 3600 + 60, 50 * 3600)] == ["5 s", "2 min", "3 h 1 min", "2 d 2 h"]
    assert [console_html.fmt_bytes(b) for b in (512, 2048, 5 * 2**30)] == ["512 B", "2.0 KiB", "5.0 GiB"]


# --- /metrics -----------------------------------------------------------------------------------------




def test_backup_metrics_advance_ages_to_now_and_encode_verification_results():
    status = {"written": (NOW - timedelta(minutes=10)).isoformat(), "kinds": {
        "db": {"count": 4, "total_bytes": 90000, "latest_id": "x", "age_hours": 1.5, "bytes": 29000, "verified": False,
               "last_verification": {"status": "failed", "finished": "2026-11-27T11:00:00+00:00", "checks": []},
               "latest_verified_id": "y"},
        "fs": {"count": 1, "total_bytes": 10, "latest_id": "z", "age_hours": 0.25, "bytes": 10, "verified": True,
               "last_verification": {"status": "passed", "finished": "2026-11-27T11:30:00+00:00", "checks": []},
               "latest_verified_id": "z"},
        "config": {"count": 1, "total_bytes": 5, "latest_id": "c", "age_hours": 2.0, "bytes": 5, "verified": False,
                   "last_verification": None, "latest_verified_id": None},
        "logs": None}}
    metrics = console_metrics.Metrics()
    console_metrics.backup_metrics(metrics, status, NOW)
    m = parse_exposition(metrics.text())
    assert m[("gravitypm_backup_age_seconds", (("kind", "db"),))] == 1.5 * 3600 + 600
    assert m[("gravitypm_backup_size_bytes", (("kind", "db"),))] == 29000
    assert m[("gravitypm_backup_last_verification_success", (("kind", "db"),))] == 0
    assert m[("gravitypm_backup_last_verification_success", (("kind", "fs"),))] == 1
    assert m[("gravitypm_backup_last_verification_success", (("kind", "config"),))] == -1
    assert m[("gravitypm_backup_verified", (("kind", "fs"),))] == 1
    assert m[("gravitypm_backup_present", (("kind", "logs"),))] == 0
    assert ("gravitypm_backup_age_seconds", (("kind", "logs"),)) not in m
    assert m[("gravitypm_backup_last_verification_timestamp_seconds", (("kind", "fs"),))] == datetime(
        2026, 11, 27, 11, 30, tzinfo=UTC).timestamp()
    assert m[("gravitypm_backup_status_written_timestamp_seconds", ())] == (NOW - timedelta(minutes=10)).timestamp()

    none = console_metrics.Metrics()
    console_metrics.backup_metrics(none, None, NOW)
    assert parse_exposition(none.text()) == {("gravitypm_backup_status_present", ()): 0}


def test_checklist_metrics_count_outcomes_and_describe_the_newest_run():
    metrics = console_metrics.Metrics()
    console_metrics.checklist_metrics(metrics, RECORDS, {**CHAINS, "weekly_maintenance": Report(False, 5, ["x"])})
    m = parse_exposition(metrics.text())
    weekly = (("checklist", "weekly_maintenance"),)
    assert m[("gravitypm_checklist_items_total", (*weekly, ("outcome", "passed")))] == 2
    assert m[("gravitypm_checklist_items_total", (*weekly, ("outcome", "waived")))] == 0
    assert m[("gravitypm_checklist_last_run_items", (*weekly, ("outcome", "missed")))] == 1
    assert m[("gravitypm_checklist_last_run_items", (*weekly, ("outcome", "failed")))] == 0  # that was W47
    last = (WEEK48 + timedelta(hours=4)).timestamp()
    assert m[("gravitypm_checklist_last_completed_timestamp_seconds", weekly)] == last
    assert m[("gravitypm_checklist_chain_ok", weekly)] == 0
    assert m[("gravitypm_checklist_chain_ok", (("checklist", "evening_checklist"),))] == 1


def test_label_values_are_escaped():
    metrics = console_metrics.Metrics()
    metrics.add("x_total", "counter", "help", 1, {"name": 'a"b\\c\nd'})
    assert metrics.text().splitlines()[-1] == 'x_total{name="a\\"b\\\\c\\nd"} 1'
    parse_exposition(metrics.text())


def test_metrics_when_the_vault_is_down_say_so_and_nothing_else():
    def unreachable():
        raise ConnectionError("Could not connect password=hunter2")

    text = console_metrics.metrics_text(unreachable, NOW)
    assert parse_exposition(text) == {("gravitypm_vault_up", ()): 0}


def test_host_agent_metrics_say_which_agent_takes_jobs_and_when_it_was_last_heard_from():
    agents = [
        {"worker": "gravitypm-host-1", "state": "idle", "online": True, "last_heartbeat": "2026-11-27T09:00:00+00:00"},
        {"worker": "gravitypm-host-old", "state": "unknown", "online": False, "last_heartbeat": None},
    ]
    metrics = console_metrics.Metrics()
    console_metrics.agent_metrics(metrics, agents)
    m = parse_exposition(metrics.text())
    assert m[("gravitypm_host_agents_online", ())] == 1
    assert m[("gravitypm_host_agent_online", (("worker", "gravitypm-host-1"),))] == 1
    assert m[("gravitypm_host_agent_online", (("worker", "gravitypm-host-old"),))] == 0
    assert m[("gravitypm_host_agent_state", (("worker", "gravitypm-host-old"), ("state", "unknown")))] == 1
    assert m[("gravitypm_host_agent_last_heartbeat_timestamp_seconds", (("worker", "gravitypm-host-1"),))] == (
        datetime(2026, 11, 27, 9, tzinfo=UTC).timestamp())
    single_box = console_metrics.Metrics()
    console_metrics.agent_metrics(single_box, None)  # no Edge executor: no agent figures at all
    assert single_box.text() == "\n"


def test_snapshots_serve_the_old_value_while_one_background_refresh_runs():
    calls, release = [], threading.Event()

    def compute():
        calls.append(len(calls) + 1)
        if len(calls) > 1:
            release.wait(5)  # a slow vault
        return calls[-1]

    snapshots = console_metrics.Snapshots(ttl=0.05)
    assert snapshots.get("k", compute)[0] == 1  # the first time: computed by the caller
    assert snapshots.get("k", compute)[0] == 1 and calls == [1]  # fresh: from memory
    time.sleep(0.06)
    value, age = snapshots.get("k", compute)  # stale: the old value at once, a refresh started
    assert value == 1 and age >= 0.05
    assert snapshots.get("k", compute)[0] == 1  # a refresh is running: no second one
    release.set()
    deadline = time.monotonic() + 5
    while snapshots.get("k", compute)[0] != 2:
        assert time.monotonic() < deadline, "background refresh never stored its value"
        time.sleep(0.01)
    assert calls == [1, 2]


# --- broken objects in the vault: an error box naming the object, never a bare 500 -----------------
class FakeVault:
    """Just enough of Vault for the console: objects as raw bytes by key (unversioned)."""

    def __init__(self, objects: dict[str, object] | None = None, prefix: str = "production"):
        import json as _json
        import uuid

        # a bucket of its own: /metrics caches the checklist figures per (bucket, prefix)
        self.bucket, self.prefix, self.status_key = f"vault-{uuid.uuid4().hex[:8]}", prefix, f"{prefix}/status.json"
        self.objects = {k: v if isinstance(v, bytes) else _json.dumps(v).encode() for k, v in (objects or {}).items()}

    def read_json(self, key):
        import json as _json

        data = self.objects.get(key)
        return None if data is None else _json.loads(data)

    def read_status(self):
        return self.read_json(self.status_key)

    # Vault without a signer (signing is tested in tests/integration/test_signing.py): every JSON object is used.
    rejected: dict = {}

    def rejection(self, key, doc, manifest=None):
        return "" if isinstance(doc, dict) else "not a JSON object"

    def list_keys(self, prefix):
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def list_prefixes(self, prefix):
        return sorted({prefix + k[len(prefix):].split("/", 1)[0] + "/" for k in self.objects
                       if k.startswith(prefix) and "/" in k[len(prefix):]})

    def object_versions(self, prefix):
        return None

    def inventory(self, kind):
        found = {}
        for key in sorted(self.objects):
            if key.startswith(f"{self.prefix}/{kind}/") and key.endswith("/manifest.json"):
                prefix = key.removesuffix("manifest.json")
                found[prefix.rstrip("/").rsplit("/", 1)[-1]] = {
                    "prefix": prefix, "manifest": key,
                    "verifications": sorted(k for k in self.objects if k.startswith(prefix + "verifications/"))}
        return found

    def list_backups(self, kind):
        out = []
        for entry in self.inventory(kind).values():
            m = self.read_json(entry["manifest"])
            m["verification"] = self.read_json(entry["verifications"][-1]) if entry["verifications"] else None
            out.append(m)
        return out


GOOD_STATUS = {"written": (NOW - timedelta(minutes=30)).isoformat(), "kinds": {
    "db": {"latest_id": DB[-1]["backup_id"], "bytes": 29000, "latest_verified_id": DB[1]["backup_id"],
           "last_verification": None, "age_hours": 0.4, "count": 4, "total_bytes": 1, "verified": False},
    "fs": None, "config": None, "logs": None}}


def _error_text(html: str) -> str:
    """The text of every error box (tags dropped, entities decoded)."""
    from html import unescape

    boxes = " ".join(re.findall(r'<div class="error" role="alert">(.*?)</div>', html, re.DOTALL))
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", boxes)).split())


@pytest.mark.parametrize("raw, says", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe garbage", "not JSON"),
    ([1, 2, 3], "a JSON array, not an object"),
    ("just a string", "a JSON string, not an object"),
    ({"kinds": {}}, "'written' missing"),
    ({"written": "yesterday", "kinds": {}}, "'written'"),
    ({"written": NOW.isoformat(), "kinds": [1]}, "'kinds'"),
])
def test_a_broken_status_json_is_an_error_box_naming_it_and_the_page_still_renders(raw, says):
    vault = FakeVault({"production/status.json": raw})
    status, html = console_views.backups_view(lambda: vault, NOW)
    assert status == 200
    Page(html)  # well-formed
    box = _error_text(html)
    assert "production/status.json" in box and says in box, box
    assert "Traceback" not in html and html.count('<section class="kind"') == 4
    m = parse_exposition(console_metrics.metrics_text(lambda: vault, NOW))
    assert m[("gravitypm_vault_up", ())] == 1
    assert m[("gravitypm_vault_object_error", (("key", "production/status.json"),))] == 1
    assert ("gravitypm_backup_status_written_timestamp_seconds", ()) not in m


def test_a_status_entry_with_missing_fields_names_the_field_and_keeps_the_other_kinds():
    broken = {**GOOD_STATUS, "kinds": {**GOOD_STATUS["kinds"],
                                       "fs": {"latest_id": "x", "bytes": 5},  # the rest is missing
                                       "logs": {**GOOD_STATUS["kinds"]["db"], "last_verification": {"status": "passed"}}}}
    vault = FakeVault({"production/status.json": broken})
    status, html = console_views.backups_view(lambda: vault, NOW)
    assert status == 200
    box = _error_text(html)
    assert "production/status.json" in box and "kinds.fs" in box and "'age_hours'" in box
    assert "kinds.logs.last_verification" in box and "'finished'" in box
    db = html.split('data-kind="db"')[1].split("</section>")[0]
    assert "status.json (written" in db  # the good kind is still shown
    m = parse_exposition(console_metrics.metrics_text(lambda: vault, NOW))
    assert m[("gravitypm_vault_up", ())] == 1
    assert m[("gravitypm_backup_size_bytes", (("kind", "db"),))] == 29000
    assert ("gravitypm_backup_size_bytes", (("kind", "fs"),)) not in m
    assert m[("gravitypm_vault_object_error", (("key", "production/status.json"),))] == 1


def _db_key(m: dict, name: str = "manifest.json") -> str:
    when = datetime.strptime(m["backup_id"][:16], "%Y%m%dT%H%M%SZ")
    return f"production/db/{when:%Y/%m/%d}/{m['backup_id']}/{name}"


def test_a_broken_manifest_or_verification_record_is_named_and_the_other_backups_still_shown():
    good, garbage, array, partial = DB[0], DB[1], DB[2], DB[3]
    objects = {
        _db_key(good): {k: v for k, v in good.items() if k != "verification"},
        _db_key(good, "verifications/20261127T000000Z.json"): b"\x00 not json",
        _db_key(garbage): b"{{{",
        _db_key(array): [garbage["backup_id"]],
        _db_key(partial): {"kind": "db", "backup_id": partial["backup_id"]},  # no finished, no artifacts
        "production/status.json": GOOD_STATUS,
    }
    vault = FakeVault(objects)
    status, html = console_views.backups_view(lambda: vault, NOW)
    assert status == 200
    Page(html)
    box = _error_text(html)
    for key in (_db_key(garbage), _db_key(array), _db_key(partial),
                _db_key(good, "verifications/20261127T000000Z.json")):
        assert key in box, key
    assert "'finished'" in box
    db = html.split('data-kind="db"')[1].split("</section>")[0]
    assert f"Newest: <code>{good['backup_id']}</code>" in db and "unreadable" in db


def _audit_key(checklist: str, seq: int) -> str:
    return f"production/audit/{checklist}/{seq:010d}.json"


def test_an_audit_record_with_missing_fields_is_named_and_the_rest_of_the_history_shown():
    objects = {_audit_key(r["checklist"], r["seq"]): r for r in RECORDS}
    lacking = {k: v for k, v in WEEKLY[1].items() if k not in ("outcome", "period")}
    objects[_audit_key("weekly_maintenance", 2)] = lacking
    objects[_audit_key("evening_checklist", 2)] = [1, 2]  # not a record at all: the chain check says so
    objects[_audit_key("weekly_maintenance", 6)] = {**WEEKLY[4], "seq": 6, "evidence": "not an object",
                                                    "completed_at": WEEK48.isoformat()}
    vault = FakeVault(objects)
    status, html = console_views.checklists_view({"since": ""}, lambda: vault, NOW)
    assert status == 200
    page = Page(html)
    box = _error_text(html)
    assert _audit_key("weekly_maintenance", 2) in box and "'outcome'" in box and "'period'" in box
    assert page.rows.count("failed") == 0 and len(page.rows) == 6  # the 5 good ones + seq 6 (evidence shown empty)
    assert "chain BROKEN" in page.all_text
    m = parse_exposition(console_metrics.metrics_text(lambda: vault, NOW))
    assert m[("gravitypm_vault_up", ())] == 1
    assert m[("gravitypm_vault_object_error", (("key", _audit_key("weekly_maintenance", 2)),))] == 1
    assert m[("gravitypm_checklist_chain_ok", (("checklist", "weekly_maintenance"),))] == 0
