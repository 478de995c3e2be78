"""A real browser for the UI tests: headless Chromium (Debian `chromium`) driven over the Chrome
DevTools protocol (the `websockets` package Airflow's API server already installs), against
`make up`'s own launcher (dev/up.py: airflow standalone + the local stack) on free ports.

Used by tests/integration/test_ui.py (import the fixtures `chromium` and `airflow_up` into a test module
to use them); `stack_env` also by test_dr_backup_site.py."""

import itertools
import json
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest

from dev.airflow_api import AirflowAPI
from dev.stack import REPO, free_port, spawn, stop_process
from dev.up import clean_env
from tests.processes import find_or_install, read_until


def find_or_install_chromium() -> str:
    """The Debian `chromium` binary, installed when missing (tests.processes.find_or_install)."""
    return find_or_install("chromium", "chromium", "headless Chromium")


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

    def send(self, method: str, *, reply_within: float = 30.0, **params) -> dict:
        """A DevTools command and its reply (`reply_within` seconds at most; CDP's own params
        go in `params`)."""
        number = next(self.ids)
        self.ws.send(json.dumps({"id": number, "method": method, "params": params}))
        deadline = time.monotonic() + reply_within
        while True:  # events arriving meanwhile are not needed: state is polled with evaluate()
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
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


def stack_env(state: Path) -> dict[str, str]:
    """The connections and Variable `make up` gave Airflow (its .state/stack.env)."""
    pairs = (shlex.split(line.removeprefix("export "))[0].split("=", 1)
             for line in (state / "stack.env").read_text().splitlines() if line.startswith("export "))
    return {k: v for k, v in pairs if k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}


@pytest.fixture
def chromium():
    return find_or_install_chromium()


@pytest.fixture(scope="module")
def airflow_up(tmp_path_factory):
    """`make up`'s launcher (as test_up.py runs it) without its smoke run, one for the module's tests (its
    start is most of their time). Single-box (`--single`): the pages and forms are the same in both
    topologies (test_up.py and test_up_single.py test those), and it starts and stops ~15 s sooner without
    the Edge worker. Stopped with one SIGINT, as a user would, with a short grace: the runs the forms
    started are not waited for (test_up.py tests the stop with the default grace)."""
    port, state = free_port(), tmp_path_factory.mktemp("up") / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dev.up", "--state-dir", str(state), "--port", str(port), "--free-ports",
         "--no-smoke", "--stop-grace", "5", "--single"],
        cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        read_until(proc, "== running;", timeout=300)
        yield port, state
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def log_in(browser: "Browser", base: str, state: Path, path: str) -> None:
    """Open `path` of the UI and log in through Airflow's own form as `make up`'s admin; it sends us on to `path`."""
    # The first page of a freshly started API server: Page.navigate answers once its response
    # arrives, which took over 30 s on a loaded fresh-clone CI run (2026-12-02, beside another
    # `make up` test on the 2 cores): wait as long as the stack is allowed to start.
    browser.send("Page.navigate", url=f"{base}{path}", reply_within=120)
    browser.wait_for("location.pathname.startsWith('/auth/login') && !!document.forms.length", timeout=120)
    browser.type_into("input[name=username]", "admin")
    browser.type_into("input[name=password]", AirflowAPI.standalone_password(state / "airflow"))
    browser.evaluate("document.querySelector('button[type=submit]').click()")
    browser.wait_for(f"location.pathname === {json.dumps(path)}")
