"""Parse dags/ the way the DAG processor does, in a fresh interpreter with no services.

The child process blocks every socket connection and points Airflow at a metadata DB
that cannot exist, so any network or DB access during parsing is an error we report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, socket, sys, time
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[1:] if len(args) > 1 else args)[:200])
    raise OSError("network access during DAG parsing is not allowed")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.getaddrinfo = refuse
from airflow.dag_processing.dagbag import DagBag  # importing Airflow is not part of parsing
t0 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - t0
print(json.dumps({
    "seconds": seconds,
    "dag_ids": sorted(bag.dag_ids),
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "network_attempts": attempts,
    "files": {str(s.file): s.duration.total_seconds() if hasattr(s.duration, "total_seconds") else s.duration
              for s in bag.dagbag_stats},
}))
"""


def parse_dags_isolated(dags_folder: Path = REPO / "dags") -> dict:
    with tempfile.TemporaryDirectory(prefix="gravitypm-parse-") as home:
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            # A DB that cannot be opened: any metadata access while parsing fails loudly.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/no/such/dir/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "PYTHONPATH": os.pathsep.join([str(REPO / "include"), os.environ.get("PYTHONPATH", "")]),
        }
        env = {k: v for k, v in env.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(dags_folder)], env=env, capture_output=True, text=True, timeout=300
        )
    if proc.returncode != 0:
        raise RuntimeError(f"DAG parsing crashed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(parse_dags_isolated(), indent=2))
