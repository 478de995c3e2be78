"""`make up SINGLE=1` end to end (its own file, so pytest-xdist runs it beside test_up.py's split topology):
one box, every task under the standalone's LocalExecutor, no host agent."""

from dev.airflow_api import AirflowAPI
from dev.up import HOST_AGENT_NAME
from tests import up_launcher
from tests.processes import cmdline, descendants, read_until

FS_BACKUP = up_launcher.FS_BACKUP
start_up = up_launcher.start_up  # the fixture
run_fs_backup, stop_with_one_sigint = up_launcher.run_fs_backup, up_launcher.stop_with_one_sigint


def test_up_single_runs_host_tasks_in_the_one_box_without_an_agent(start_up):
    proc, port, state = start_up("--single", "--no-smoke")
    output = read_until(proc, "== running;", timeout=300)
    print(next(line.strip() for line in output.splitlines() if "started in" in line))

    assert "single box: every task runs under the standalone's LocalExecutor" in output
    api = AirflowAPI(f"http://127.0.0.1:{port}", password=AirflowAPI.standalone_password(state / "airflow"))
    api.wait_for_dag(FS_BACKUP)
    assert api.get("/api/v2/importErrors")["total_entries"] == 0
    tis = run_fs_backup(api)
    assert {ti["executor"] for ti in tis.values()} <= {None, "LocalExecutor"}
    assert tis["archive_to_vault"]["hostname"] == tis["apply_retention"]["hostname"] != HOST_AGENT_NAME

    started = descendants(proc.pid)
    assert not any("edge worker" in cmdline(pid) for pid in started)
    stop_with_one_sigint(proc, started, state)

