"""Is the split `make up` stack healthy on its metadata DB under the suite's load? (issue 15; docs/metadb.md)

    python -m bench.metadb_load [--metadb sqlite|postgres] [--minutes 10] [--drain-minutes 5]

Not part of `python -m bench`: it starts a whole stack and runs for many minutes. It starts the split stack
as tests/up_launcher.py does (`python -m dev.up --state-dir <tmp> --port <free> --free-ports --no-smoke`,
clean environment), unpauses every DAG and compresses a day of the suite's schedules into `--minutes`: each
cron-scheduled DAG is triggered over the REST API as often as its cron fires on a busy day (2024-01-01, a
Monday that starts a quarter and a month), at least once, spread evenly over the window — the */5 host agent
watch 288 times. The Asset half of an "Asset or cron" schedule is not triggered: the backups' Asset events
start those runs themselves. Human checklist steps are answered as they come up (first option). After the
window the bench waits up to `--drain-minutes` for runs to finish, then stops the stack with one SIGINT.

Prints JSON: runs triggered, runs and task instances by final state (every run in the DB, the scheduler's and
the Asset-triggered ones included), failed task instances by DAG/task, OperationalError / "database is
locked" lines in every Airflow log of the state dir (standalone output per component, task logs), API 5xx
answers the bench saw (each retried 500 counted), queued→start delay percentiles, wall time, load average.
Healthy = no lock errors, no 5xx, no run or task failed because of the metadata DB.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

from dev.airflow_api import AirflowAPI
from dev.stack import REPO, free_port
from dev.up import clean_env

BUSY_DAY = datetime(2024, 1, 1, tzinfo=UTC)  # Monday, 1 January: weekly, monthly and quarterly all fire
CRON = re.compile(r"(\S+ \S+ \S+ \S+ \S+)$")  # the cron of "0 8 * * *" and of "Asset or 0 * * * *"
LOG_PATTERNS = {"database is locked": re.compile(r"database is locked"),
                "OperationalError": re.compile(r"OperationalError"),
                # the API server's handler of a failed DB statement (it answers 500 with that id)
                "API DB statement failed": re.compile(r"Error with id \w+, statement:"),
                # the API server's access log: 5xx to anyone (edge worker, task runners, UI), not only the bench
                "http 5xx answered": re.compile(r"request finished .* status_code=5\d\d"),
                "deadlock": re.compile(r"deadlock detected", re.IGNORECASE),
                "too many clients": re.compile(r"too many clients|remaining connection slots", re.IGNORECASE)}
FINISHED = {"success", "failed"}


class CountingAPI(AirflowAPI):
    """dev/airflow_api.py's client with the same retry policy (5 tries, 2 s apart, on 500), counting every
    5xx answer on the way instead of hiding the retried ones."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.errors_5xx: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def _request(self, method: str, path: str, body=None, auth: bool = True, attempts: int = 5):
        for attempt in range(attempts):
            try:
                return super()._request(method, path, body, auth, attempts=1)
            except urllib.error.HTTPError as err:
                if err.code >= 500:
                    with self.lock:
                        self.errors_5xx[f"{err.code} {method} {re.sub(r'/dagRuns/[^/]+', '/dagRuns/<run>', path)}"] += 1
                if err.code != 500 or attempt == attempts - 1:
                    raise
                time.sleep(2)


def runs_per_day(cron: str) -> int:
    """How often `cron` fires on the busy day; at least once (a weekly DAG runs on some day)."""
    it, n = croniter(cron, BUSY_DAY - timedelta(microseconds=1)), 0
    while it.get_next(datetime) < BUSY_DAY + timedelta(days=1):
        n += 1
    return max(n, 1)


def day_plan(dags: list[dict], minutes: float) -> list[tuple[float, str]]:
    """(seconds into the window, dag_id) for every trigger, each DAG's runs spread evenly."""
    plan = []
    for dag in dags:
        match = CRON.search(dag.get("timetable_summary") or "")
        if not match:
            continue  # manual, or Asset-only: started by what triggers it
        n = runs_per_day(match.group(1))
        plan += [((i + 0.5) * minutes * 60 / n, dag["dag_id"]) for i in range(n)]
    return sorted(plan)


def start_up(state: Path, metadb: str) -> tuple[subprocess.Popen, int, list[str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dev.up", "--state-dir", str(state), "--port", str(port), "--free-ports",
         "--no-smoke", "--metadb", metadb],
        cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    ready = threading.Event()

    def pump():  # keeps reading, so `up` never blocks on a full pipe
        for line in proc.stdout:
            output.append(line)
            if line.startswith("== running;"):
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(600) or proc.poll() is not None:
        proc.kill()
        raise RuntimeError("`up` did not start:\n" + "".join(output))
    return proc, port, output


def answer_prompts(api: CountingAPI, settle_s: float = 10.0) -> int:
    """Answer every pending human step (first option), as a person at the UI would; how many. Only steps
    waiting `settle_s` already: an answer within seconds of the pause hits Airflow 3.3.2's HITL race
    ("state mismatch", apache/airflow#71580), which a person never does."""
    pending = api.get("/api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false&limit=100")["hitl_details"]
    answered = 0
    for prompt in pending:
        ti = prompt["task_instance"]
        asked = datetime.fromisoformat(prompt["created_at"]) if prompt.get("created_at") else None
        if ti["state"] != "awaiting_input" or (asked and (datetime.now(UTC) - asked).total_seconds() < settle_s):
            continue
        params = {"comment": "answered by bench.metadb_load"} if "comment" in (prompt.get("params") or {}) else {}
        try:
            api.answer(ti["dag_id"], ti["dag_run_id"], ti["task_id"], prompt["options"][0], params)
            answered += 1
        except urllib.error.HTTPError:
            pass  # answered meanwhile, or timed out: the run's outcome tells
    return answered


def every_page(api: CountingAPI, path: str, key: str) -> list[dict]:
    items, offset = [], 0
    while True:
        page = api.get(f"{path}{'&' if '?' in path else '?'}limit=100&offset={offset}")
        items += page[key]
        offset += len(page[key])
        if not page[key] or offset >= page["total_entries"]:
            return items


def log_errors(state: Path) -> dict:
    """Lines matching LOG_PATTERNS per log (a traceback counts once per matching line): airflow.log per standalone
    component (its `name |` prefix), others per file."""
    found: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    samples: list[str] = []
    server_5xx: collections.Counter[str] = collections.Counter()
    for path in sorted([*state.glob("logs/*.log"), *(state / "airflow" / "logs").rglob("*.log")]):
        for line in path.open(errors="replace"):
            hits = [name for name, pattern in LOG_PATTERNS.items() if pattern.search(line)]
            if not hits:
                continue
            where = path.name
            if path.name == "airflow.log" and "|" in line[:20]:
                where = "standalone:" + line.split("|", 1)[0].strip()
            elif path.is_relative_to(state / "airflow" / "logs"):
                where = "task logs" if "dag_id=" in str(path) else "airflow/logs:" + path.name
            for name in hits:
                found[where][name] += 1
            if "http 5xx answered" in hits and (call := re.search(r"method=(\S+) path=(\S+)", line)):
                path_class = re.sub(r"/(dagRuns|task-instances|jobs/\w+)/[^/ ]+", r"/\1/<id>", call.group(2))
                server_5xx[f"{call.group(1)} {path_class}"] += 1
            if len(samples) < 5:
                samples.append(f"{where}: {line.strip()[:300]}")
    return {"by_log": {k: dict(v) for k, v in found.items()},
            "total": dict(sum(found.values(), collections.Counter())), "server_5xx_by_call": dict(server_5xx),
            "samples": samples}


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {"n": len(values), "p50": round(q[49], 2), "p90": round(q[89], 2), "p99": round(q[98], 2),
            "max": round(max(values), 2)}


def seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def measure(api: CountingAPI, minutes: float, drain_minutes: float) -> dict:
    dags = every_page(api, "/api/v2/dags", "dags")
    for dag in dags:
        if dag["is_paused"]:
            api.unpause(dag["dag_id"])  # also the drill the quarterly checklist triggers
    plan = day_plan(dags, minutes)
    triggered: collections.Counter[str] = collections.Counter()
    trigger_errors: list[str] = []
    prompts = 0
    start = time.monotonic()
    next_prompt_check = start
    for at, dag_id in plan:
        while (wait := start + at - time.monotonic()) > 0:
            if time.monotonic() >= next_prompt_check:
                prompts += answer_prompts(api)
                next_prompt_check = time.monotonic() + 15
            time.sleep(min(wait, 1.0))
        try:
            api.trigger(dag_id)
            triggered[dag_id] += 1
        except urllib.error.HTTPError as err:
            trigger_errors.append(f"{dag_id}: {err.code}")
    window_s = time.monotonic() - start
    drain_end = time.monotonic() + drain_minutes * 60
    while time.monotonic() < drain_end:
        prompts += answer_prompts(api)
        runs = every_page(api, "/api/v2/dags/~/dagRuns", "dag_runs")
        if all(r["state"] in FINISHED for r in runs):
            break
        time.sleep(15)
    runs = every_page(api, "/api/v2/dags/~/dagRuns", "dag_runs")
    tis = every_page(api, "/api/v2/dags/~/dagRuns/~/taskInstances", "task_instances")
    failed_tis = collections.Counter(f"{t['dag_id']}.{t['task_id']}" for t in tis if t["state"] == "failed")
    delays = [d for t in tis if (d := seconds(t.get("queued_when"), t.get("start_date"))) is not None]
    return {
        "window_minutes": minutes,
        "window_s": round(window_s, 1),
        "drain_s": round(time.monotonic() - start - window_s, 1),
        "triggered": sum(triggered.values()),
        "triggered_by_dag": dict(triggered),
        "trigger_errors": trigger_errors,
        "prompts_answered": prompts,
        "runs_by_state": dict(collections.Counter(r["state"] for r in runs)),
        "runs_by_dag_and_state": {f"{d} {s}": n for (d, s), n in sorted(collections.Counter(
            (r["dag_id"], r["state"]) for r in runs).items())},
        "task_instances_by_state": dict(collections.Counter(str(t["state"]) for t in tis)),
        "failed_task_instances": dict(failed_tis.most_common()),
        "queued_to_start_s": percentiles(delays),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metadb_load", description=__doc__.splitlines()[0])
    parser.add_argument("--metadb", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--minutes", type=float, default=10, help="the compressed day (default 10)")
    parser.add_argument("--drain-minutes", type=float, default=5, help="then wait this long for runs to finish")
    parser.add_argument("--keep", action="store_true", help="keep the state dir (logs) and print its path")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix=f"metadb-load-{args.metadb}-"))
    load: list[tuple[float, float]] = []
    stop_sampling = threading.Event()

    def sample_load():
        while not stop_sampling.is_set():
            load.append(os.getloadavg()[:2])
            stop_sampling.wait(10)

    started = time.monotonic()
    proc, port, _ = start_up(state, args.metadb)
    startup_s = time.monotonic() - started
    threading.Thread(target=sample_load, daemon=True).start()
    api = CountingAPI(f"http://127.0.0.1:{port}", password=AirflowAPI.standalone_password(state / "airflow"))
    try:
        report = {"metadb": args.metadb, "startup_s": round(startup_s, 1),
                  **measure(api, args.minutes, args.drain_minutes)}
    finally:
        stop_sampling.set()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
    report["api_5xx"] = {"total": sum(api.errors_5xx.values()), **api.errors_5xx}
    report["log_lines"] = log_errors(state)
    report["wall_s"] = round(time.monotonic() - started, 1)
    report["load_average_1m"] = {"mean": round(statistics.mean(x[0] for x in load), 2) if load else None,
                                 "max": round(max(x[0] for x in load), 2) if load else None}
    report["cpus"] = os.cpu_count()
    report["healthy"] = (not report["log_lines"]["total"] and not report["api_5xx"]["total"]
                         and not report["trigger_errors"])
    if args.keep:
        report["state_dir"] = str(state)
    else:
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
