"""`make up`: the whole suite on its embedded local stack; Ctrl-C (or `make stop`) stops everything.

    python -m dev.up [--state-dir .state] [--no-smoke]      start, then wait for Ctrl-C
    python -m dev.up stop                                    stop a running `up` (SIGINT to it)

State (Airflow's SQLite DB and password, MongoDB data, Slack messages, the fake host
tree, logs) lives in the state directory (default .state/, git-ignored) and is reused
by the next start.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from dev.airflow_api import AirflowAPI
from dev.stack import BIN, REPO, LocalStack, repo_airflow_env, spawn, stop_process

DEFAULT_PORTS = {"s3": 9100, "mongo": 27117, "slack": 8765, "host": 8766}
AIRFLOW_PORT = 8080
SMOKE_DAG = "gravitypm_morning_checklist"


class Stop(Exception):
    """SIGINT/SIGTERM arrived: shut down."""


def _raise_stop(signum, _frame):
    raise Stop(signal.Signals(signum).name)


def airflow_env(state: Path, stack: LocalStack, port: int) -> dict[str, str]:
    return {
        **repo_airflow_env(state / "airflow"),
        **stack.airflow_env(),
        # standalone starts its components as `airflow …` found on PATH: use this venv's.
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__PARALLELISM": "4",  # ~12 processes and ~1 GB instead of dozens
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",  # new DAG files show up quickly
    }


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """`source .state/stack.env` gives a shell the same Airflow + connections (for the airflow CLI)."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def smoke_run(api: AirflowAPI, stack: LocalStack) -> bool:
    api.wait_for_dag(SMOKE_DAG)
    errors = api.get("/api/v2/importErrors")["total_entries"]
    if errors:
        print(f"!! {errors} DAG import error(s): see the UI's 'DAG Import Errors'")
    api.unpause(SMOKE_DAG)
    run_id = api.trigger(SMOKE_DAG)
    print(f"   smoke run: {SMOKE_DAG} {run_id} …", flush=True)
    run = api.wait_for_run(SMOKE_DAG, run_id)
    print(f"   smoke run {run['state']}; its Slack summary is at {stack.url('slack')}/")
    return run["state"] == "success" and not errors


def up(state: Path, smoke: bool, port: int, free_ports: bool = False) -> int:
    pidfile = state / "up.pid"
    if pidfile.exists() and _alive(int(pidfile.read_text())):
        print(f"already running (pid {pidfile.read_text().strip()}); stop it with: make stop")
        return 1
    state.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(str(os.getpid()))
    # Installed before anything starts, so a Ctrl-C at any moment still cleans up.
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)

    stack = LocalStack(state, ports={} if free_ports else dict(DEFAULT_PORTS))
    airflow = None
    try:
        print("-- starting the local stack (S3, MongoDB, Slack receiver, production host) …", flush=True)
        stack.start()
        env = airflow_env(state, stack, port)
        write_env_file(state / "stack.env", env)
        full_env = {**os.environ, **env}
        print("-- preparing Airflow's metadata DB …", flush=True)
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=full_env, check=True, capture_output=True)
        subprocess.run(
            [str(BIN / "airflow"), "pools", "import", str(REPO / "deploy" / "pools.json")],
            env=full_env, check=True, capture_output=True,
        )
        print("-- starting airflow standalone …", flush=True)
        airflow = spawn([str(BIN / "airflow"), "standalone"], stack.logs_dir / "airflow.log", env)
        api = AirflowAPI(f"http://127.0.0.1:{port}")
        api.wait_healthy(alive=lambda: airflow.poll() is None)
        api.password = AirflowAPI.standalone_password(state / "airflow")
        print(
            f"\n== GravityPM Ops is up\n"
            f"   Airflow UI:     http://127.0.0.1:{port}   login: admin / {api.password}\n"
            f"   Slack messages: {stack.url('slack')}/\n"
            f"   S3 (moto):      {stack.url('s3')}  bucket {stack.vault_bucket}\n"
            f"   MongoDB:        127.0.0.1:{stack.ports['mongo']} (credentials in {state / 'secrets.json'})\n"
            f"   host tree:      {stack.app_root}\n"
            f"   logs:           {stack.logs_dir}/\n"
            f"   airflow CLI:    source {state / 'stack.env'}\n",
            flush=True,
        )
        if smoke and not smoke_run(api, stack):
            print("!! smoke run did not succeed: look at the run in the UI", flush=True)
        print("== running; Ctrl-C (or `make stop`) stops everything", flush=True)
        while True:
            for name, proc in [("airflow", airflow), *stack.procs.items()]:
                if proc.poll() is not None:
                    print(f"!! {name} exited with code {proc.returncode}; stopping everything")
                    return 1
            time.sleep(1)
    except Stop:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abort the clean-up
        print("\n-- stopping …", flush=True)
        if airflow is not None:
            stop_process(airflow, grace=30)
        stack.stop()
        pidfile.unlink(missing_ok=True)
        print("-- stopped; nothing left running", flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(state: Path) -> int:
    pidfile = state / "up.pid"
    if not pidfile.exists() or not _alive(pid := int(pidfile.read_text())):
        print("not running")
        return 0
    os.kill(pid, signal.SIGINT)
    while _alive(pid):
        time.sleep(0.5)
    print("stopped")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["up", "stop"], default="up")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("GRAVITYPM_OPS_STATE", REPO / ".state")))
    parser.add_argument("--port", type=int, default=AIRFLOW_PORT)
    parser.add_argument("--free-ports", action="store_true", help="pick free ports for the local stack")
    parser.add_argument("--no-smoke", dest="smoke", action="store_false", help="skip the first checklist run")
    args = parser.parse_args()
    state = args.state_dir.resolve()
    return stop(state) if args.command == "stop" else up(state, args.smoke, args.port, args.free_ports)


if __name__ == "__main__":
    sys.exit(main())
