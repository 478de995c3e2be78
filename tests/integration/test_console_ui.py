"""The ops console in a real browser: headless Chromium (Debian `chromium`) driven over the Chrome
DevTools protocol (the `websockets` package Airflow's API server already installs), against
`make up`'s own launcher (dev/up.py: airflow standalone + the local stack) on free ports.

Logs in through Airflow's login form, opens the Checklists and Backups pages inside the UI,
filters with the page's form and downloads the CSV export."""

import csv
import io
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

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
