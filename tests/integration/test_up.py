"""`make up` end to end: the real launcher, airflow standalone, the scheduler, a real DAG run,
then one SIGINT and nothing left running. The slowest test (~1 min), and the one that proves
the start command works."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dev.airflow_api import AirflowAPI
from dev.stack import REPO, free_port
from tests.processes import alive, descendants, read_until

BANNER = "== GravityPM Ops is up"


@pytest.fixture
def up_process(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GRAVITYPM_OPS"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dev.up", "--state-dir", str(tmp_path / "state"), "--port", str(port), "--free-ports"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    yield proc, port, tmp_path / "state"
    if proc.poll() is None:
        proc.kill()


def test_up_runs_the_suite_and_one_sigint_stops_everything(up_process):
    proc, port, state = up_process
    output = read_until(proc, "== running;", timeout=300)

    assert BANNER in output and f"http://127.0.0.1:{port}" in output and "login: admin / " in output
    assert "smoke run success" in output, output
    api = AirflowAPI(f"http://127.0.0.1:{port}", password=AirflowAPI.standalone_password(state / "airflow"))
    dags = {d["dag_id"] for d in api.get("/api/v2/dags?limit=100")["dags"]}
    assert "gravitypm_morning_checklist" in dags
    assert not any(d.startswith("example_") for d in dags)  # examples off
    assert api.get("/api/v2/importErrors")["total_entries"] == 0
    pools = {p["name"]: p["slots"] for p in api.get("/api/v2/pools")["pools"]}
    assert pools.get("gravitypm_db") == 1 and "gravitypm_host" in pools
    # The smoke run's summary reached the local Slack receiver.
    messages = [json.loads(line) for line in (state / "slack" / "messages.jsonl").read_text().splitlines()]
    assert any("Morning checklist" in m["payload"]["text"] for m in messages)

    started = descendants(proc.pid)
    assert len(started) >= 5  # 4 stack services + airflow standalone and its children
    proc.send_signal(signal.SIGINT)
    stopping = time.monotonic()
    rest = proc.stdout.read()
    print(f"stopped in {time.monotonic() - stopping:.1f}s")
    assert proc.wait(timeout=90) == 0, rest
    assert "nothing left running" in rest
    assert [pid for pid in started if alive(pid)] == []
    assert not (state / "up.pid").exists()
