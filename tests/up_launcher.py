"""`start_up`: the fixture that starts `python -m dev.up` (the real `make up` launcher) in a state dir of its
own, for the end-to-end tests of test_up.py, test_up_single.py and test_dr_backup_site.py (each file can then run beside the
other under pytest-xdist). Import it into a test module: `from tests.up_launcher import start_up`."""

import signal
import subprocess
import sys
import time

import pytest

from dev.airflow_api import AirflowAPI
from dev.stack import REPO, free_port
from dev.up import clean_env
from tests.processes import alive


def stop_with_sigint(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Stop the way a user would (Ctrl-C), so no orphan keeps running."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def start_up(tmp_path):
    """start(*flags) -> (the `up` process, its Airflow port, its state dir); stopped with SIGINT afterwards."""
    procs = []

    def start(*flags: str):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dev.up", "--state-dir", str(tmp_path / "state"), "--port", str(port),
             "--free-ports", *flags],
            cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        procs.append(proc)
        return proc, port, tmp_path / "state"

    yield start
    for proc in procs:  # a failed test: nothing is left running
        stop_with_sigint(proc)


FS_BACKUP = "gravitypm_fs_backup"


def run_fs_backup(api: AirflowAPI) -> dict[str, dict]:
    """Trigger gravitypm_fs_backup over the REST API; its task instances by task id."""
    api.unpause(FS_BACKUP)
    run_id = api.trigger(FS_BACKUP)
    assert api.wait_for_run(FS_BACKUP, run_id)["state"] == "success"
    tis = api.get(f"/api/v2/dags/{FS_BACKUP}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {ti["task_id"]: ti for ti in tis}


def stop_with_one_sigint(proc, started: set[int], state) -> None:
    proc.send_signal(signal.SIGINT)
    stopping = time.monotonic()
    rest = proc.stdout.read()
    print(f"stopped in {time.monotonic() - stopping:.1f}s")
    assert proc.wait(timeout=120) == 0, rest
    assert "nothing left running" in rest
    assert [pid for pid in started if alive(pid)] == []
    assert not (state / "up.pid").exists()
