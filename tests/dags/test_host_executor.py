"""Host tasks and the Edge executor (issue 15): the same DAG files parse under the default executor and
with GRAVITYPM_OPS_HOST_EXECUTOR naming the Edge executor, and naming an executor the deployment lacks is
the import error Airflow 3.3 makes of it. Each parse runs in a fresh interpreter: Airflow reads its
executor configuration once per process."""

import json
import os
import subprocess
import sys

from gravitypm_ops.names import HOST_EXECUTOR_ENV, HOST_QUEUE

EDGE = "airflow.providers.edge3.executors.EdgeExecutor"
PARSE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag()
tasks = {f"{d.dag_id}.{t.task_id}": [t.queue, t.executor] for d in bag.dags.values() for t in d.tasks}
print(json.dumps({"errors": {k: v.strip().splitlines()[-1] for k, v in bag.import_errors.items()}, "tasks": tasks}))
"""


def parse(executors: str, host_executor: str | None) -> dict:
    env = {**os.environ, "AIRFLOW__CORE__EXECUTOR": executors}
    env.pop(HOST_EXECUTOR_ENV, None)
    if host_executor:
        env[HOST_EXECUTOR_ENV] = host_executor
    out = subprocess.run([sys.executable, "-c", PARSE], env=env, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_the_setting_no_task_names_an_executor(airflow_db):
    found = parse("LocalExecutor", None)
    assert found["errors"] == {}
    assert not [t for t, (_, executor) in found["tasks"].items() if executor]
    assert any(queue == HOST_QUEUE for queue, _ in found["tasks"].values())


def test_with_the_edge_executor_every_host_task_and_only_those_name_it(airflow_db):
    found = parse(f"LocalExecutor,{EDGE}", EDGE)
    assert found["errors"] == {}
    host = {t for t, (queue, _) in found["tasks"].items() if queue == HOST_QUEUE}
    assert {t for t, (_, executor) in found["tasks"].items() if executor == EDGE} == host
    # What must touch the production host runs there (the runbook's file backups, log rotation, restores).
    assert {"gravitypm_fs_backup.preflight", "gravitypm_fs_backup.archive_to_vault",
            "gravitypm_log_rotation.rotate_and_ship", "gravitypm_fs_restore.restore",
            "gravitypm_db_restore.stop_app", "gravitypm_db_restore.start_app"} <= host
    assert "gravitypm_backup_verification.verify_backups" not in host  # S3 + MongoDB only: the control plane


def test_an_executor_the_deployment_lacks_is_an_import_error_naming_it(airflow_db):
    found = parse("LocalExecutor", EDGE)
    assert found["errors"], "expected import errors"
    assert all("UnknownExecutorException" in e and EDGE in e for e in found["errors"].values())
