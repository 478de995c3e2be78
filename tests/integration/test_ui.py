"""The UI in a real browser: headless Chromium (Debian `chromium`) driven over the Chrome DevTools
protocol against `make up`'s own launcher (tests/ui_browser.py), one stack for both tests of this file
(its start is most of their time). The console test runs first: it checks exact rows of the data it
seeds, and the forms test then adds runs and a backup of its own.

1. The ops console: log in through Airflow's login form, open the Checklists and Backups pages inside
   the UI, filter with the page's form and download the CSV export.
2. Every DAG's trigger form can be submitted as it opens (issue 14, item 15): open each DAG's page,
   press "Trigger", and press the form's own "Trigger" without touching a field. The form must not
   block it (a required value left empty turns its section red and disables the button) and the run
   must exist afterwards (REST). The restore DAGs open as a dry run: their runs stop nothing and
   restore nothing; the file restore (given a verified `fs` backup) succeeds and reports its plan. (A
   verified `db` backup would take ~2 minutes of trial restore here, so the DB dry run, whose plan fails,
   is only checked for changing nothing and ending red.)"""

import csv
import io
import json
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from dev.airflow_api import AirflowAPI
from dev.stack import REPO
from tests import ui_browser
from tests.console_seed import seed
from tests.ui_browser import Browser, log_in, stack_env

chromium, airflow_up = ui_browser.chromium, ui_browser.airflow_up  # the shared fixtures

# JS that reaches into the console page shown in the UI's iframe (same origin).
FRAME = "document.querySelector('iframe') && document.querySelector('iframe').contentDocument"
ROWS = f"Array.from(({FRAME}).querySelectorAll('tr[data-outcome]')).map(r => r.dataset.outcome)"


def test_console_pages_render_filter_and_export_inside_the_airflow_ui(airflow_up, chromium, monkeypatch, tmp_path):
    port, state = airflow_up
    with ExitStack() as closing:
        started = time.monotonic()

        # Real data in `make up`'s vault: backups through the vault API, records through AuditLog, status.json
        # by the verification task — with the same connection and Variable the API server has.
        from gravitypm_ops.config import load_config
        from gravitypm_ops.vault.store import Vault
        from gravitypm_ops.verification import tasks as verification_tasks

        for name, value in stack_env(state).items():
            monkeypatch.setenv(name, value)
        seeded = seed(Vault.from_config(load_config()))
        verification_tasks.write_status()

        browser = Browser(chromium, Path(tempfile.mkdtemp(dir=tmp_path)), closing)
        base = f"http://127.0.0.1:{port}"
        try:
            # Log in through Airflow's own form; it sends us on to the Checklists page inside the UI.
            log_in(browser, base, state, "/plugin/gravitypm-checklists")
            assert browser.wait_for(f"{FRAME} && ({FRAME}).querySelectorAll('section.checklist').length === 2")
            frame_src = browser.evaluate("document.querySelector('iframe').getAttribute('src')")
            assert frame_src.endswith("gravitypm/checklists")
            # evening_checklist, then weekly_maintenance's two periods, item by item
            assert browser.evaluate(ROWS) == ["passed", "passed", "warning", "passed", "failed", "missed"]
            text = browser.evaluate(f"({FRAME}).body.innerText")
            assert text.count("chain verified") == 2 and "review_access_logs: evidence <ok>" in text

            # Filter with the page's own form: failed items only, any date.
            browser.evaluate(f"""(() => {{ const d = {FRAME};
                d.querySelector('input[name=since]').value = '';
                d.querySelector('select[name=outcome]').value = 'failed';
                d.querySelector('form.filters button[type=submit]').click(); }})()""")
            browser.wait_for(f"({FRAME}).location.search.includes('outcome=failed')")
            assert browser.wait_for(f"JSON.stringify({ROWS}) === '[\"failed\"]'")
            # The page's CSP (no script, inline styles only) still lets its styles apply.
            badge = f"getComputedStyle(({FRAME}).querySelector('tr[data-outcome] .badge')).backgroundColor"
            assert browser.evaluate(badge) == "rgb(254, 215, 215)"  # .failed

            # Export: the CSV link carries the same filters and downloads a file.
            browser.evaluate(f"({FRAME}).getElementById('csv-export').click()")
            deadline = time.monotonic() + 30
            while not [p for p in browser.downloads.glob("*.csv")] and time.monotonic() < deadline:
                time.sleep(0.2)
            files = list(browser.downloads.glob("*.csv"))
            assert len(files) == 1 and files[0].name.startswith("gravitypm-checklists_failed"), files
            rows = list(csv.DictReader(io.StringIO(files[0].read_text())))
            assert [(r["checklist"], r["item"], r["outcome"]) for r in rows] == [
                ("weekly_maintenance", "check_backup_integrity", "failed")]
            assert rows[0]["hash"] == seeded.weekly[1]["hash"]

            # Backups, reached through the UI's Browse menu: per kind, newest backup and a chart of every size.
            browser.evaluate("[...document.querySelectorAll('button')].find(b => /Browse/.test(b.innerText)).click()")
            menu_item = "[...document.querySelectorAll('a, [role=menuitem]')].find(e => e.innerText.trim() === '{}')"
            assert browser.wait_for(f"!!{menu_item.format('Checklists')} && !!{menu_item.format('Backups')}")
            browser.evaluate(f"{menu_item.format('Backups')}.click()")
            browser.wait_for("location.pathname === '/plugin/gravitypm-backups'")
            assert browser.wait_for(f"{FRAME} && ({FRAME}).querySelectorAll('section.kind').length === 4")
            db = browser.evaluate(f"({FRAME}).querySelector('section[data-kind=db]').innerText")
            assert f"Newest: {seeded.failed_db_id}" in db and "failed: trial_restore" in db
            assert browser.evaluate(f"({FRAME}).querySelectorAll('section[data-kind=db] svg circle').length") == 3
            print(f"seeded and driven the browser in {time.monotonic() - started:.1f}s")
        except BaseException:
            print(f"screenshot: {browser.screenshot(tmp_path / 'console.png')}")
            raise


RESTORE_DAGS = ("gravitypm_db_restore", "gravitypm_fs_restore")
# Tasks that change something; a dry run as the form opens must never run them.
CHANGES = ("approve", "safety_backup", "stop_app", "restore", "validate")

MODAL = "[...document.querySelectorAll('[role=dialog]')].find(d => d.innerText.includes('Trigger Dag - {dag}'))"
SUBMIT = "[...({modal}).querySelectorAll('button')].find(b => b.innerText.trim() === 'Trigger')"


def manual_runs(api: AirflowAPI, dag_id: str) -> list[dict]:
    runs = api.get(f"/api/v2/dags/{dag_id}/dagRuns?run_type=manual&limit=100")["dag_runs"]
    return [r for r in runs if r["run_type"] == "manual"]


def submit_form_as_it_opens(browser: Browser, dag_id: str) -> None:
    modal = MODAL.format(dag=dag_id)
    submit = SUBMIT.format(modal=modal)
    browser.evaluate(f"location.assign('/dags/{dag_id}')")
    browser.wait_for(f"location.pathname === '/dags/{dag_id}' && "
                     "!!document.querySelector('button[aria-label=\"Trigger Dag\"]')")
    browser.evaluate("document.querySelector('button[aria-label=\"Trigger Dag\"]').click()")
    browser.wait_for(f"!!({modal}) && !!({submit})")
    time.sleep(0.5)  # the form checks its params right after it renders
    state = browser.evaluate(f"""(() => {{ const m = {modal}; const b = {submit};
        return {{disabled: b.disabled, invalid: [...m.querySelectorAll('[data-invalid]')].map(e => e.innerText)}}; }})()""")
    assert state == {"disabled": False, "invalid": []}, f"{dag_id}: the form blocks Trigger as it opens: {state}"
    browser.evaluate(f"({submit}).click()")
    browser.wait_for(f"!({modal})", timeout=30)  # the modal closes once the run is created


def seed_verified_fs_backup(state: Path, monkeypatch) -> str:
    """A verified `fs` backup in `make up`'s vault, with the connection and Variable the API server has."""
    from gravitypm_ops.backup import files as backup_files
    from gravitypm_ops.config import load_config
    from gravitypm_ops.vault.store import Vault
    from gravitypm_ops.verification.verify import verify_backup

    for name, value in stack_env(state).items():
        monkeypatch.setenv(name, value)
    cfg = load_config()
    vault = Vault.from_config(cfg)
    manifest = backup_files.run_backup("fs", cfg, vault, dag_id="t", run_id=uuid.uuid4().hex, run_after=datetime.now(UTC))
    assert verify_backup(vault, manifest)["status"] == "passed"
    return manifest["backup_id"]


def test_every_trigger_form_submits_as_it_opens(airflow_up, chromium, monkeypatch, tmp_path):
    port, state = airflow_up
    fs_backup = seed_verified_fs_backup(state, monkeypatch)
    base = f"http://127.0.0.1:{port}"
    api = AirflowAPI(base, password=AirflowAPI.standalone_password(state / "airflow"))
    # Every DAG the suite has (the golden surface names them all), each parsed before its form opens.
    dag_ids = sorted(json.loads((REPO / "tests/dags/golden/dag_surface.json").read_text())["dags"])
    assert set(RESTORE_DAGS) <= set(dag_ids), dag_ids
    for dag_id in dag_ids:
        api.wait_for_dag(dag_id)
    others = [d for d in dag_ids if d not in RESTORE_DAGS]
    with ExitStack() as closing:
        started = time.monotonic()
        browser = Browser(chromium, Path(tempfile.mkdtemp(dir=tmp_path)), closing)
        try:
            log_in(browser, base, state, "/dags")
            created = {}

            def submit(dag_id: str) -> dict:
                before = {r["dag_run_id"] for r in manual_runs(api, dag_id)}
                submit_form_as_it_opens(browser, dag_id)
                deadline = time.monotonic() + 20
                while not (new := [r for r in manual_runs(api, dag_id) if r["dag_run_id"] not in before]):
                    assert time.monotonic() < deadline, f"{dag_id}: no run after submitting its form"
                    time.sleep(0.5)
                created[dag_id] = new[0]
                return new[0]

            # The restores first, and waited for before the other forms: every other DAG's run queues
            # host and vault work (backups, rotation, drill) that a restore would otherwise wait behind.
            for dag_id in RESTORE_DAGS:
                submit(dag_id)
            # The restores opened as a dry run: nothing stopped, nothing restored.
            for dag_id in RESTORE_DAGS:
                run = created[dag_id]
                assert run["conf"]["dry_run"] is True and run["conf"]["confirm"] in (None, ""), run["conf"]
                run = api.wait_for_run(dag_id, run["dag_run_id"], timeout=180)
                states = api.task_states(dag_id, run["dag_run_id"])
                ran = {t: s for t, s in states.items() if t in CHANGES and s not in (None, "skipped", "upstream_failed")}
                assert ran == {}, f"{dag_id}: a dry run ran {ran} ({states})"
                # A failed task makes the run red, whatever order the scheduler ran the rest in (the DB
                # restore's plan fails here: no verified db backup).
                assert run["state"] == ("failed" if "failed" in states.values() else "success"), (run["state"], states)
                if states.get("start_app") == "success":  # the fs restore runs it always; it starts only what was stopped
                    assert api.xcom(dag_id, run["dag_run_id"], "start_app").get("not_needed") is True
                print(f"{dag_id}: dry run {run['state']}, tasks {states}")
            fs_run = created["gravitypm_fs_restore"]["dag_run_id"]
            assert api.get(f"/api/v2/dags/gravitypm_fs_restore/dagRuns/{fs_run}")["state"] == "success"
            plan = api.xcom("gravitypm_fs_restore", fs_run, "plan")
            assert plan["dry_run"] is True and plan["stop_app"] is False and plan["backup"]["backup_id"] == fs_backup

            for dag_id in others:
                # The run exists: that is all this test asks of it. Stopped at once, so that a dozen
                # backups, drills and checklists do not load the machine or delay the stack's shutdown.
                api.mark_run(dag_id, submit(dag_id)["dag_run_id"], "failed")
            assert set(created) == set(dag_ids)
            print(f"submitted {len(created)} forms in {time.monotonic() - started:.1f}s")
        except BaseException:
            print(f"screenshot: {browser.screenshot(tmp_path / 'trigger-form.png')}")
            raise
