"""Test harness: an isolated AIRFLOW_HOME and, for tests that ask for it, the real local stack.

Airflow reads its configuration when first imported, so the environment is set here,
before any test module imports Airflow. Unit tests need none of the services.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"

from dev.stack import LocalStack, repo_airflow_env  # noqa: E402  (imports no Airflow)

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="gravitypm-test-airflow-"))
os.environ.update(repo_airflow_env(AIRFLOW_HOME), AIRFLOW__API__BASE_URL="http://airflow.test:8080")
for name in list(os.environ):
    if name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):  # a developer's shell must not leak in
        del os.environ[name]


# The files that take minutes (each starts `make up`, a browser or every DAG's CLI test), longest first:
# pytest-xdist hands out files in collection order (--no-loadscope-reorder in pytest.ini), so the two
# workers end together instead of one finishing a long file alone at the end. The first two start two
# `make up` stacks together (load ~13 on two cores: their tests' waits allow for it). Putting the CLI
# test second instead cost 160-300 s more worker time in two CI runs: the stacks then overlapped later.
SLOW_FILES = ("test_up.py", "test_ui.py", "test_cli_dags_test.py", "test_up_single.py",
              "test_dr_backup_site.py", "test_checklist_hitl.py", "test_housekeeping.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The local stack (S3, MongoDB, Slack receiver, production host), up for the whole session."""
    with LocalStack(tmp_path_factory.mktemp("stack"), mongo_engine="memory") as running:
        os.environ.update(running.airflow_env())
        yield running


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata DB (SQLite) in the session's AIRFLOW_HOME, pools imported."""
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], check=True, capture_output=True)
    subprocess.run([*airflow, "pools", "import", str(REPO / "deploy" / "pools.json")], check=True, capture_output=True)
    return AIRFLOW_HOME


class SlackInbox:
    """The local Slack receiver, read over HTTP like any client would."""

    def __init__(self, base_url: str):
        self.base_url = base_url

    def messages(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.base_url}/messages", timeout=5) as r:
            return [m["payload"] for m in json.load(r)]

    def texts(self) -> list[str]:
        return [m.get("text", "") for m in self.messages()]

    def clear(self) -> None:
        req = urllib.request.Request(f"{self.base_url}/messages", method="DELETE")
        urllib.request.urlopen(req, timeout=5).close()


@pytest.fixture
def slack(stack) -> SlackInbox:
    inbox = SlackInbox(stack.url("slack"))
    inbox.clear()
    return inbox


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture
def run_dag(stack, dagbag, monkeypatch):
    """Run a DAG for real with dag.test() against the stack; config overrides on top of the stack's."""

    def run(dag_id: str, ops_overrides: dict | None = None, **test_kwargs):
        config = {**stack.ops_config(), **(ops_overrides or {})}
        monkeypatch.setenv("AIRFLOW_VAR_GRAVITYPM_OPS", json.dumps(config))
        dag = dagbag.get_dag(dag_id)
        # dag.test(run_conf=...) writes the conf into the tasks' params: keep runs independent.
        params = {task.task_id: copy.deepcopy(task.params) for task in dag.tasks}
        try:
            return DagRunResult(dag.test(**test_kwargs))
        finally:
            for task in dag.tasks:
                task.params = params[task.task_id]

    return run


class DagRunResult:
    def __init__(self, dag_run):
        self.dag_run = dag_run
        self.state = str(dag_run.state)
        self.task_states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}

    def xcom(self, task_id: str, key: str = "return_value"):
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.query(XComModel).filter_by(
                dag_id=self.dag_run.dag_id, run_id=self.dag_run.run_id, task_id=task_id, key=key
            ).one_or_none()
            return None if row is None else XComModel.deserialize_value(row)


class Standalone:
    """A running `airflow standalone` (real scheduler, API server, triggerer) on the test stack."""

    def __init__(self, api, prefix: str, database: str, vault, log: Path):
        self.api, self.prefix, self.database, self.vault, self.log = api, prefix, database, vault, log


@pytest.fixture(scope="session")
def standalone(stack, tmp_path_factory):
    """For what dag.test() cannot do (human-in-the-loop steps wait forever there): one standalone
    for the session, with a vault prefix and a "production" database of its own."""
    import uuid

    from dev.airflow_api import AirflowAPI
    from dev.stack import BIN, free_port, spawn, stop_process
    from dev.up import airflow_env
    from gravitypm_ops.vault.store import Vault

    home, port, tag = tmp_path_factory.mktemp("standalone"), free_port(), uuid.uuid4().hex[:8]
    prefix, database = f"standalone-{tag}", f"standalone_prod_{tag}"
    config = {**stack.ops_config(), "vault_prefix": prefix, "mongo_databases": [database],
              "checklists": {"security_updates_command": ["true"]}}  # no apt run on the test machine
    env = {
        **airflow_env(home, stack, port),
        "AIRFLOW_VAR_GRAVITYPM_OPS": json.dumps(config),
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",  # the HITL timeout sweep
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the tests' runs
    }
    full_env = {**os.environ, **env}
    airflow = str(BIN / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=full_env, check=True, capture_output=True)
    subprocess.run([airflow, "pools", "import", str(REPO / "deploy" / "pools.json")], env=full_env, check=True,
                   capture_output=True)
    proc = spawn([airflow, "standalone"], home / "airflow.log", env)
    try:
        api = AirflowAPI(f"http://127.0.0.1:{port}")
        api.wait_healthy(alive=lambda: proc.poll() is None)
        api.password = AirflowAPI.standalone_password(home / "airflow")
        vault = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
        yield Standalone(api, prefix, database, vault, home / "airflow.log")
    finally:
        stop_process(proc, grace=30)
