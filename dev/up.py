"""`make up`: the whole suite on its embedded local stack; Ctrl-C (or `make stop`) stops everything.

    python -m dev.up [--state-dir .state] [--no-smoke] [--single] [--offsite] [--host-agent-timeout MINUTES]
                                                                      start, then wait for Ctrl-C
    python -m dev.up stop                                             stop a running `up` (SIGINT to it)
    python -m dev.up agent --name gravitypm-host-2                  one more host agent against a running
                                                                      split `up` (a DR host), until Ctrl-C

The default is the split topology of a production deployment: the control plane (airflow standalone:
API server, scheduler, dag-processor, triggerer, LocalExecutor; metadata DB per --metadb) plus one host agent, an Edge
worker (`airflow edge worker -q gravitypm_host -H gravitypm-host-1`) with its own AIRFLOW_HOME and no
metadata DB, which runs every host task (GRAVITYPM_OPS_HOST_EXECUTOR). `--single` (`make up SINGLE=1`)
runs everything in the one standalone, like a small single-box install. In split mode
`gravitypm_host_agent_watch` is unpaused, and the control plane keeps running when the agent exits.
`--offsite` adds an off-site vault (a second bucket on the same S3 server, connection gravitypm_aws_offsite).
`agent` starts another Edge worker like gravitypm-host-1 (its own AIRFLOW_HOME under .state/hosts/<name>/,
and a fresh empty tree .state/hosts/<name>/opt/gravitypm/production: one file system serves every local
host, so a DR host's tree is a directory of its own, which split mode allows as an fs restore target).

`--metadb postgres` keeps Airflow's metadata in a Postgres cluster the project starts and stops itself
(dev/postgres.py, data in .state/postgres); `--metadb sqlite` in .state/airflow/airflow.db (see docs/metadb.md).

State (Airflow's metadata DB and password, MongoDB data, Slack messages, the fake host
tree, logs) lives in the state directory (default .state/, git-ignored) and is reused
by the next start.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from dev.airflow_api import AirflowAPI
from dev.postgres import DEFAULT_PORT as POSTGRES_PORT
from dev.postgres import Postgres
from dev.stack import BIN, REPO, LocalStack, free_port, repo_airflow_env, spawn, stop_process
from gravitypm_ops.names import HOST_EXECUTOR_ENV, HOST_QUEUE

DEFAULT_PORTS = {"s3": 9100, "mongo": 27117, "slack": 8765, "host": 8766}
AIRFLOW_PORT = 8080
SMOKE_DAG = "gravitypm_morning_checklist"
WATCH_DAG = "gravitypm_host_agent_watch"  # fails and alerts host tasks left waiting without an agent
EDGE_EXECUTOR = "airflow.providers.edge3.executors.EdgeExecutor"  # a bare "EdgeExecutor" does not load
HOST_AGENT_NAME = "gravitypm-host-1"
OFFSITE_SUFFIX = "-offsite"  # the off-site bucket of --offsite: <vault bucket>-offsite
METADBS = ("sqlite", "postgres")
DEFAULT_METADB = "postgres"  # SQLite locks under the suite's load in the split topology: docs/metadb.md
# On stop (Ctrl-C, `make stop`), Airflow and the host agent get this long to let running tasks finish;
# then the rest of their process group is terminated. The UI tests, whose runs are left unfinished, pass less.
STOP_GRACE_SECONDS = 30.0


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


def jwt_secret(state: Path) -> str:
    """The JWT secret the API server signs with and the Edge worker presents (>= 64 bytes), kept per state dir."""
    path = state / "jwt_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


def edge_env(port: int, secret: str) -> dict[str, str]:
    """What the control plane and the host agent must agree on: executors, the edge API, the JWT secret,
    and the host tasks' executor (the worker re-parses the DAG and checks the task's executor)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": f"LocalExecutor,{EDGE_EXECUTOR}",
        "AIRFLOW__EDGE__API_ENABLED": "True",
        "AIRFLOW__EDGE__API_URL": f"http://127.0.0.1:{port}/edge_worker/v1/rpcapi",
        # The default is http://localhost:8080/execution/, wrong for any other port.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        HOST_EXECUTOR_ENV: EDGE_EXECUTOR,
    }


def host_agent_env(home: Path, port: int, secret: str) -> dict[str, str]:
    """The host agent gets only the DAG files, the API URL and the JWT secret: no connections, no Variables
    (tasks fetch them from the API server) and no metadata DB: its AIRFLOW_HOME is never migrated, and the
    task processes it starts have ORM access blocked by the task SDK."""
    return {
        **repo_airflow_env(home),
        **edge_env(port, secret),
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),  # 8793 may be the standalone's
        "AIRFLOW__EDGE__JOB_POLL_INTERVAL": "2",  # host tasks start within ~2 s of being queued
    }


def sqlite_conn(airflow_home: Path) -> str:
    """Airflow's default metadata DB (no setting needed): SQLite in AIRFLOW_HOME."""
    return f"sqlite:///{airflow_home / 'airflow.db'}"


def forget_stale_host_agent(sql_alchemy_conn: str) -> None:
    """After a crash the DB still lists the agent as online, and the API server refuses a second worker of
    that name (409) until the scheduler marks it unknown (~150 s). No `up` of this state dir is running
    (the pid file says so), so that entry is stale: mark it offline, as a clean stop would have."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(sql_alchemy_conn)
    try:
        if not sqlalchemy.inspect(engine).has_table("edge_worker"):  # the first split start
            return
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("UPDATE edge_worker SET state = 'offline' WHERE worker_name = :name"),
                         {"name": HOST_AGENT_NAME})
    finally:
        engine.dispose()


def start_host_agent(home: Path, log: Path, port: int, secret: str, name: str = HOST_AGENT_NAME) -> subprocess.Popen:
    argv = [str(BIN / "airflow"), "edge", "worker", "-q", HOST_QUEUE, "-H", name, "--pid", str(home / "worker.pid")]
    home.mkdir(parents=True, exist_ok=True)
    return spawn(argv, log, host_agent_env(home, port, secret))


def wait_for_host_agent(api: AirflowAPI, alive, name: str = HOST_AGENT_NAME, timeout: float = 120.0) -> None:
    """Until the worker has registered and reports itself idle or running (the edge provider's UI API)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the host agent exited during start-up")
        workers = api.get("/edge_worker/ui/worker").get("workers", [])
        if any(w["worker_name"] == name and w["state"] in ("idle", "running") for w in workers):
            return
        time.sleep(1)
    raise TimeoutError(f"host agent {name} not online within {timeout:.0f}s")


def dr_hosts_dir(state: Path) -> Path:
    """Where `agent` puts the extra hosts (each: its AIRFLOW_HOME and its tree); fs restores may target it."""
    return state / "hosts"


def offsite_env(stack: LocalStack, cfg: dict) -> dict[str, str]:
    """An off-site vault on the stack's S3 server: a second bucket, reached with the primary's credentials
    (so copies are server-side, as between two regions of one account)."""
    bucket = stack.vault_bucket + OFFSITE_SUFFIX
    s3 = stack.s3_client()
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    cfg["offsite_bucket"] = bucket
    return {"AIRFLOW_CONN_GRAVITYPM_AWS_OFFSITE": json.dumps(stack.connections()["gravitypm_aws"])}


def clean_env() -> dict[str, str]:
    """This process's environment without Airflow or suite settings, to launch `up` from a test or a
    benchmark: `up` makes its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GRAVITYPM_OPS"))}


def read_env_file(path: Path) -> dict[str, str]:
    """The settings write_env_file wrote (`export K=V` lines)."""
    pairs = (shlex.split(line.removeprefix("export "))[0].split("=", 1)
             for line in path.read_text().splitlines() if line.startswith("export "))
    return dict(pairs)


def agent(state: Path, name: str) -> int:
    """One more host agent against the running split `up` of this state dir, e.g. the new host of a disaster
    recovery: an Edge worker started exactly like gravitypm-host-1, with its own AIRFLOW_HOME and a fresh tree.
    Runs until Ctrl-C / SIGTERM; the worker then says goodbye (offline at once)."""
    pidfile, env_file = state / "up.pid", state / "stack.env"
    if not (pidfile.exists() and _alive(int(pidfile.read_text()))) or not env_file.exists():
        print(f"no `make up` running for {state}: start it first")
        return 1
    env = read_env_file(env_file)
    if not env.get(HOST_EXECUTOR_ENV):
        print("this `up` runs single-box (--single): it has no Edge executor for a host agent")
        return 1
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    home = dr_hosts_dir(state) / name
    tree = home / "opt" / "gravitypm" / "production"
    tree.mkdir(parents=True, exist_ok=True)
    port = int(env["AIRFLOW__API__PORT"])
    api = AirflowAPI(f"http://127.0.0.1:{port}", password=AirflowAPI.standalone_password(state / "airflow"))
    proc = None
    try:
        print(f"-- starting the host agent (Edge worker {name}, queue {HOST_QUEUE}) …", flush=True)
        proc = start_host_agent(home / "agent", state / "logs" / f"host-agent-{name}.log", port,
                                env["AIRFLOW__API_AUTH__JWT_SECRET"], name)
        wait_for_host_agent(api, alive=lambda: proc.poll() is None, name=name)
        print(f"== host agent {name} online; tree {tree} (home {home / 'agent'}); Ctrl-C stops it", flush=True)
        while proc.poll() is None:
            time.sleep(1)
        print(f"!! host agent {name} exited with code {proc.returncode}", flush=True)
        return 1
    except Stop:
        return 0
    finally:
        if proc is not None:
            stop_process(proc, grace=30)
        print(f"-- host agent {name} stopped", flush=True)


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


def up(state: Path, smoke: bool, port: int, free_ports: bool = False, single: bool = False,
       host_agent_timeout: int | None = None, offsite: bool = False, metadb: str = DEFAULT_METADB,
       stop_grace: float = STOP_GRACE_SECONDS) -> int:
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
    postgres = Postgres(state, **({} if free_ports else {"port": POSTGRES_PORT})) if metadb == "postgres" else None
    airflow = agent = None
    started = time.monotonic()
    try:
        print("-- starting the local stack (S3, MongoDB, Slack receiver, production host) …", flush=True)
        stack.start()
        env = airflow_env(state, stack, port)
        if postgres is not None:
            print(f"-- starting Postgres (metadata DB, data in {postgres.data_dir}) …", flush=True)
            postgres.start()
            env.update(postgres.airflow_env())
        cfg = json.loads(env["AIRFLOW_VAR_GRAVITYPM_OPS"])
        if host_agent_timeout is not None:
            cfg["host_agent_timeout_minutes"] = host_agent_timeout
        if offsite:
            env.update(offsite_env(stack, cfg))
        if not single:  # the trees of hosts started with `python -m dev.up agent` (a DR host's fresh tree)
            cfg["restore_allowed_roots"] = [str(stack.app_root), str(dr_hosts_dir(state))]
        env["AIRFLOW_VAR_GRAVITYPM_OPS"] = json.dumps(cfg)
        # Single: an empty setting, so a developer's shell cannot send host tasks to a missing executor.
        env.update({HOST_EXECUTOR_ENV: ""} if single else edge_env(port, jwt_secret(state)))
        write_env_file(state / "stack.env", env)
        full_env = {**os.environ, **env}
        print("-- preparing Airflow's metadata DB …", flush=True)
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=full_env, check=True, capture_output=True)
        subprocess.run(
            [str(BIN / "airflow"), "pools", "import", str(REPO / "deploy" / "pools.json")],
            env=full_env, check=True, capture_output=True,
        )
        if not single:
            forget_stale_host_agent(postgres.sql_alchemy_conn() if postgres is not None else sqlite_conn(state / "airflow"))
        print("-- starting airflow standalone …", flush=True)
        airflow = spawn([str(BIN / "airflow"), "standalone"], stack.logs_dir / "airflow.log", env)
        api = AirflowAPI(f"http://127.0.0.1:{port}")
        api.wait_healthy(alive=lambda: airflow.poll() is None)
        api.password = AirflowAPI.standalone_password(state / "airflow")
        if not single:
            print(f"-- starting the host agent (Edge worker {HOST_AGENT_NAME}, queue {HOST_QUEUE}) …", flush=True)
            agent = start_host_agent(state / "host-agent", stack.logs_dir / "host-agent.log", port,
                                     env["AIRFLOW__API_AUTH__JWT_SECRET"])
            wait_for_host_agent(api, alive=lambda: agent.poll() is None)
        offsite_line = f", off-site bucket {cfg['offsite_bucket']}" if offsite else ""
        metadb_line = (f"Postgres 127.0.0.1:{postgres.port} (data {postgres.data_dir}, log "
                       f"{postgres.log_path})" if postgres is not None else f"SQLite {state / 'airflow' / 'airflow.db'}")
        topology = ("single box: every task runs under the standalone's LocalExecutor" if single else
                    f"split: host tasks run on the Edge worker {HOST_AGENT_NAME} (home {state / 'host-agent'})")
        print(
            f"\n== GravityPM Ops is up\n"
            f"   Airflow UI:     http://127.0.0.1:{port}   login: admin / {api.password}\n"
            f"   Slack messages: {stack.url('slack')}/\n"
            f"   S3 (moto):      {stack.url('s3')}  bucket {stack.vault_bucket}"
            f"{offsite_line}\n"
            f"   MongoDB:        127.0.0.1:{stack.ports['mongo']} (credentials in {state / 'secrets.json'})\n"
            f"   topology:       {topology}\n"
            f"   metadata DB:    {metadb_line}\n"
            f"   host tree:      {stack.app_root}\n"
            f"   logs:           {stack.logs_dir}/\n"
            f"   airflow CLI:    source {state / 'stack.env'}\n"
            f"   started in {time.monotonic() - started:.0f}s\n",
            flush=True,
        )
        if smoke and not smoke_run(api, stack):
            print("!! smoke run did not succeed: look at the run in the UI", flush=True)
        if not single:  # the split topology's safety net (after the smoke run, which it would slow down)
            api.wait_for_dag(WATCH_DAG)
            api.unpause(WATCH_DAG)
        print("== running; Ctrl-C (or `make stop`) stops everything", flush=True)
        agent_gone = False
        while True:
            if agent is not None and not agent_gone and agent.poll() is not None:
                # As in production, the control plane outlives its host agent: host tasks wait, and the watch
                # fails and reports them after host_agent_timeout_minutes.
                agent_gone = True
                print(f"!! host agent {HOST_AGENT_NAME} exited with code {agent.returncode}; the control plane keeps "
                      f"running (host tasks wait; {WATCH_DAG} reports them). Restart `make up` to bring it back.",
                      flush=True)
            for name, proc in [("airflow", airflow), *stack.procs.items(),
                               *([("postgres", postgres.proc)] if postgres is not None else [])]:
                if proc.poll() is not None:
                    print(f"!! {name} exited with code {proc.returncode}; stopping everything")
                    return 1
            time.sleep(1)
    except Stop:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abort the clean-up
        print("\n-- stopping …", flush=True)
        if agent is not None:  # first, while the API server can still record it offline
            stop_process(agent, grace=stop_grace)
        if airflow is not None:
            stop_process(airflow, grace=stop_grace)
        stack.stop()
        if postgres is not None:  # after Airflow, its only client
            postgres.stop()
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
    parser.add_argument("command", nargs="?", choices=["up", "stop", "agent"], default="up")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("GRAVITYPM_OPS_STATE", REPO / ".state")))
    parser.add_argument("--port", type=int, default=AIRFLOW_PORT)
    parser.add_argument("--free-ports", action="store_true", help="pick free ports for the local stack")
    parser.add_argument("--single", action="store_true", help="one box: no Edge worker, host tasks run locally")
    parser.add_argument("--no-smoke", dest="smoke", action="store_false", help="skip the first checklist run")
    parser.add_argument("--host-agent-timeout", type=int, metavar="MINUTES",
                        help="config host_agent_timeout_minutes (default 15): host tasks waiting this long with no "
                             "host agent online are failed and alerted")
    parser.add_argument("--offsite", action="store_true", help="an off-site vault too (a second bucket)")
    parser.add_argument("--metadb", choices=METADBS, default=DEFAULT_METADB,
                        help=f"Airflow's metadata DB (default {DEFAULT_METADB}; docs/metadb.md): a Postgres cluster "
                             "started and stopped with the stack (data in <state-dir>/postgres), or SQLite")
    parser.add_argument("--stop-grace", type=float, default=STOP_GRACE_SECONDS, metavar="SECONDS",
                        help=f"on stop, how long running tasks may take to finish before they are terminated "
                             f"(default {STOP_GRACE_SECONDS:g})")
    parser.add_argument("--name", default="gravitypm-host-2", help="agent: the Edge worker's host name")
    args = parser.parse_args()
    state = args.state_dir.resolve()
    if args.command == "stop":
        return stop(state)
    if args.command == "agent":
        return agent(state, args.name)
    return up(state, args.smoke, args.port, args.free_ports, args.single, args.host_agent_timeout, args.offsite,
              args.metadb, args.stop_grace)


if __name__ == "__main__":
    sys.exit(main())
