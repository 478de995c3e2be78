"""Reaching Airflow's metadata DB from a task that runs on the control plane.

Task code in Airflow 3 has no ORM access: the task supervisor replaces the database URL in the task
process's environment with `airflow-db-not-allowed:///` (airflow.sdk.execution_time.supervisor
.block_orm_access). A task on the control plane's executor (LocalExecutor, the scheduler's machine) was
started with the real settings; `control_plane_env` hands those to a subprocess, and `run_marked` runs one
(`python -m <module> ...`) and reads the one marked JSON line it prints. In `dag.test()` the task runs
unblocked, so the environment is used as it is. Never on the host agent: it has no DB settings at all.

Shared by housekeeping (metadb.py: `airflow db clean` and the DB figures) and the host agent watch
(host_agents.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

BLOCKED_URL = "airflow-db-not-allowed:///"
CONN_VARS = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__SQL_ALCHEMY_CONN")


ANCESTORS_SEARCHED = 4  # task process -> LocalExecutor worker -> scheduler (-> airflow standalone)


def initial_environ() -> dict[str, str]:
    """The environment the executor was given, before the task supervisor blocked the database URL in
    os.environ (Linux /proc): this process's start environment, or, when that holds no database URL, the
    nearest ancestor's that does. A LocalExecutor worker (the task's supervisor) names itself with
    setproctitle, which writes over its start environment, and the task process forked from it inherits
    that; the scheduler that started the worker keeps its own. Found by running on Postgres: on SQLite
    the fallback (airflow.cfg's default) happened to be the same file."""
    pid = own = os.getpid()
    for _ in range(ANCESTORS_SEARCHED):
        env = _start_environ(pid)
        if any(env.get(name) and env[name] != BLOCKED_URL for name in CONN_VARS):
            return env
        pid = _parent_pid(pid)
        if pid <= 1:
            break
    return _start_environ(own)


def _start_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if b"=" in item)
    return {name: value for name, _, value in pairs}


def _parent_pid(pid: int) -> int:
    try:  # /proc/<pid>/stat: "pid (comm) state ppid ...", comm may hold spaces and parentheses
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def control_plane_env(environ: Mapping[str, str] | None = None, initial: Mapping[str, str] | None = None) -> dict:
    """The environment for a subprocess that must reach the metadata DB like the scheduler does.

    A blocked URL is replaced by the one the process started with, else dropped, so that airflow.cfg or
    `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD` / `_SECRET` (left alone by the supervisor) apply."""
    env = dict(os.environ if environ is None else environ)
    blocked = [name for name in CONN_VARS if env.get(name) == BLOCKED_URL]
    if blocked:
        started = initial_environ() if initial is None else initial
        for name in blocked:
            if started.get(name) and started[name] != BLOCKED_URL:
                env[name] = started[name]
            else:
                env.pop(name)
    package_root = str(Path(__file__).resolve().parents[2])  # so the subprocess imports this package too
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def as_utc(value) -> datetime | None:
    """A timestamp as a driver returns it (SQLite: text; Postgres: aware; MySQL: naive UTC)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def print_marked(mark: str, value) -> None:
    """The subprocess's answer: one line, `mark` + JSON, on stdout (Airflow may log around it)."""
    print(mark + json.dumps(value, default=str), flush=True)


def run_marked(module: str, args: Sequence[str], env: Mapping[str, str], *, mark: str, timeout: float,
               what: str):
    """`python -m module *args` with `env`; the JSON of its last `mark` line. RuntimeError (scrubbed, with
    the output's tail) saying `what` failed when it exits non-zero or prints no such line."""
    from gravitypm_ops.redact import scrub

    done = subprocess.run([sys.executable, "-m", module, *args], env=dict(env), capture_output=True, text=True,
                          timeout=timeout, check=False)
    marked = [line for line in done.stdout.splitlines() if line.startswith(mark)]
    if done.returncode != 0 or not marked:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise RuntimeError(scrub(f"{what} failed (exit {done.returncode}): {tail}"))
    return json.loads(marked[-1].removeprefix(mark))
