"""The ops console in a real browser: headless Chromium (Debian `chromium`) driven over the Chrome
DevTools protocol (the `websockets` package Airflow's API server already installs), against
`make up`'s own launcher (dev/up.py: airflow standalone + the local stack) on free ports.

Logs in through Airflow's login form, opens the Checklists and Backups pages inside the UI,
filters with the page's form and downloads the CSV export."""

import csv
import io
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest

from dev.airflow_api import AirflowAPI
from dev.stack import REPO, free_port, spawn, stop_process
from tests.integration.test_console import seed
from tests.integration.test_up import read_until


def find_or_install_chromium() -> str:
    """The Debian `chromium` binary; installed with apt-get (as root, or with password-less sudo) when missing,
    so a clean clone's `make test` gets it without a step of its own."""
    found = shutil.which("chromium")
    if found:
        return found
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = subprocess.run([*apt, "install", "-y", "-q", "chromium"], capture_output=True, text=True, env=env)
    if install.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run([*apt, "update", "-q"], capture_output=True, env=env)
        install = subprocess.run([*apt, "install", "-y", "-q", "chromium"], capture_output=True, text=True, env=env)
    found = shutil.which("chromium")
    if not found:
        pytest.fail(f"headless Chromium is needed and could not be installed ({' '.join(apt)} install chromium):\n"
                    f"{install.stderr[-2000:]}")
    return found


class Browser:
    """One headless Chromium tab, driven over the DevTools protocol (JSON over a websocket)."""

    def __init__(self, binary: str, profile: Path, closing: ExitStack):
        from websockets.sync.client import connect

        self.downloads = profile / "downloads"
        self.proc = spawn(  # own process group, stopped whole (renderers too)
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"],
            profile / "chromium.log",
        )
        closing.callback(stop_process, self.proc, grace=10)
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it picked here
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            assert self.proc.poll() is None and time.monotonic() < deadline, (profile / "chromium.log").read_text()
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            tab = next(t for t in json.load(answer) if t["type"] == "page")
        self.ws = closing.enter_context(connect(tab["webSocketDebuggerUrl"], max_size=None))
        self.ids = itertools.count(1)
        self.send("Page.enable")
        self.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(self.downloads))

    def send(self, method: str, **params) -> dict:
        number = next(self.ids)
        self.ws.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:  # events arriving meanwhile are not needed: state is polled with evaluate()
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        """Poll a JS expression until it is truthy; its value."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError as err:  # the page is navigating
                value, last = None, err
            if value:
                return value
            time.sleep(0.2)
        page = self.evaluate("location.href + '\\n' + document.body.innerText")[:2000]
        raise AssertionError(f"not true within {timeout:.0f}s: {expression} (last error: {last}); page:\n{page}")

    def type_into(self, selector: str, text: str) -> None:
        """Focus a field and type into it as a user would (React sees real input events)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> Path:
        import base64

        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path


# JS that reaches into the console page shown in the UI's iframe (same origin).
FRAME = "document.querySelector('iframe') && document.querySelector('iframe').contentDocument"
ROWS = f"Array.from(({FRAME}).querySelectorAll('tr[data-outcome]')).map(r => r.dataset.outcome)"


def stack_env(state: Path) -> dict[str, str]:
    """The connections and Variable `make up` gave Airflow (its .state/stack.env)."""
    pairs = (shlex.split(line.removeprefix("export "))[0].split("=", 1)
             for line in (state / "stack.env").read_text().splitlines() if line.startswith("export "))
    return {k: v for k, v in pairs if k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}


@pytest.fixture
def chromium():
    return find_or_install_chromium()


@pytest.fixture
def airflow_up(tmp_path):
    """`make up`'s launcher (as test_up.py runs it) without its smoke run: the console needs no DAG run.
    Stopped with one SIGINT, as a user would."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GRAVITYPM_OPS"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dev.up", "--state-dir", str(tmp_path / "state"), "--port", str(port), "--free-ports",
         "--no-smoke"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        read_until(proc, "== running;", timeout=300)
        yield port, tmp_path / "state"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


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
            browser.send("Page.navigate", url=f"{base}/plugin/gravitypm-checklists")
            browser.wait_for("location.pathname.startsWith('/auth/login') && !!document.forms.length")
            browser.type_into("input[name=username]", "admin")
            browser.type_into("input[name=password]", AirflowAPI.standalone_password(state / "airflow"))
            browser.evaluate("document.querySelector('button[type=submit]').click()")
            browser.wait_for("location.pathname === '/plugin/gravitypm-checklists'")
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
