"""`airflow dags test <dag_id>`, the command users try a DAG with first, exits 0 and ends in
"success" on every DAG that can run unattended with its default params (issue 14, item 10).

The CLI itself runs, as a subprocess against the session's AIRFLOW_HOME with the stack's
connections and config, like a user's shell would: no dag.test() in-process, no patching.
Only DAGs that need a person are left out, each for a stated reason.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

from tests.access_logs import seed_logs

# In run order: the backups first, so that verification, the off-site copy and the drill find a
# fresh backup of every kind in this test's own vault prefix.
UNATTENDED = [
    "gravitypm_db_backup",
    "gravitypm_fs_backup",
    "gravitypm_config_backup",
    "gravitypm_log_rotation",
    "gravitypm_backup_verification",
    "gravitypm_offsite_copy",
    "gravitypm_dr_drill",
    "gravitypm_morning_checklist",
    "gravitypm_evening_checklist",
    "gravitypm_host_agent_watch",  # single box here: nothing to watch, says so, succeeds
    "gravitypm_airflow_housekeeping",  # last: its default keep_days (90) leaves every run above in place
]
NEEDS_A_PERSON = {
    "gravitypm_db_restore": "a dry run by default, which needs a verified db backup (a verification run "
                            "takes ~2 min here); its untouched form is tested in test_ui.py",
    "gravitypm_fs_restore": "a dry run by default, as the DB restore; tested in test_ui.py",
    "gravitypm_weekly_maintenance": "human checklist items (HITL prompts wait for an answer)",
    "gravitypm_monthly_maintenance": "human checklist items (HITL prompts wait for an answer)",
    "gravitypm_quarterly_maintenance": "human checklist items, and it triggers the DR drill and waits",
}


def test_every_dag_is_run_by_the_cli_test_or_left_out_for_a_reason(dagbag):
    assert set(dagbag.dag_ids) == set(UNATTENDED) | set(NEEDS_A_PERSON)
    assert not set(UNATTENDED) & set(NEEDS_A_PERSON)


def _last_run_state(dag_id: str) -> tuple[str | None, dict]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = DagRun.find(dag_id=dag_id, session=session)
        if not runs:
            return None, {}
        run = max(runs, key=lambda r: r.id)
        return str(run.state), {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}


def test_airflow_dags_test_exits_0_with_success_on_every_unattended_dag(stack, airflow_db, small_db, tmp_path):
    # A logs dir with a history: yesterday's rotated log, not shipped yet. (A log seen for the first
    # time is only recorded, like logrotate does, so a fresh one gives no `logs` backup, and the
    # freshness audit of the verification DAG would rightly fail.)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("today's lines\n")
    (logs / "app.log.1.gz").write_bytes(gzip.compress(b"yesterday's lines\n"))
    # The daily checklists judge this machine's disk and memory: thresholds it always meets, as
    # the point here is the CLI, not the machine. The evening one reads a site's access logs.
    site_logs = tmp_path / "site-logs"
    seed_logs(site_logs, attack=0, now=datetime.now(UTC))
    config = {**stack.ops_config(), "vault_prefix": f"cli-dags-test-{uuid.uuid4().hex[:6]}",
              "mongo_databases": [small_db], "logs_dir": str(logs),
              "disk_min_free_percent": 1, "memory_max_used_percent": 99}
    per_dag = {"gravitypm_evening_checklist": {"logs_dir": str(site_logs)}}
    problems, timings = [], {}
    for dag_id in UNATTENDED:
        env = {**os.environ, **stack.airflow_env(),
               "AIRFLOW_VAR_GRAVITYPM_OPS": json.dumps({**config, **per_dag.get(dag_id, {})})}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", dag_id],
            check=False, env=env, capture_output=True, text=True, timeout=300,
        )
        timings[dag_id] = round(time.monotonic() - started, 1)
        state, tasks = _last_run_state(dag_id)
        if done.returncode != 0 or state != "success":
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            problems.append(f"{dag_id}: exit {done.returncode}, run {state}, tasks {tasks}\n{tail}")
    print("airflow dags test timings (s):", timings)
    assert not problems, "\n\n".join(problems)
