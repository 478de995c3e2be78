"""The re-run guard turns a failure into UpstreamDeferRace only when Airflow logged a state mismatch; the wait
before an answer ends on the scheduler's line for that task's deferring try, and only on it."""

import threading

import pytest

from tests.upstream_races import UpstreamDeferRace, blame_upstream_defer_race, wait_until_defer_exit_drained


class EventLogs:
    """Answers the one REST call the guard makes: GET /api/v2/eventLogs?dag_id=…&run_id=…&event=…"""

    def __init__(self, killed_runs: set[str]):
        self.killed_runs, self.queries = killed_runs, []

    def get(self, path: str) -> dict:
        self.queries.append(path)
        killed = any(f"run_id={run}&" in path for run in self.killed_runs) and "event=state+mismatch" in path
        return {"event_logs": [{"task_id": "approve", "extra": "reported … finished with state success"}] if killed else []}


def test_a_failure_with_a_logged_state_mismatch_is_the_upstream_race():
    api = EventLogs({"r2"})
    with (pytest.raises(UpstreamDeferRace, match="killed approve of d r2 .*apache/airflow#72716"),
          blame_upstream_defer_race(api) as runs):
        runs += [("d", "r1"), ("d", "r2")]
        raise AssertionError("run failed")


@pytest.mark.parametrize("error", [AssertionError("run failed"), TimeoutError("never asked")])
def test_any_other_failure_stays_what_it_is(error):
    api = EventLogs(set())
    with pytest.raises(type(error)) as raised, blame_upstream_defer_race(api) as runs:
        runs.append(("d", "r1"))
        raise error
    assert not isinstance(raised.value, UpstreamDeferRace) and len(api.queries) == 1


def test_a_passing_test_asks_nothing():
    api = EventLogs({"r1"})
    with blame_upstream_defer_race(api) as runs:
        runs.append(("d", "r1"))
    assert api.queries == []


# As the scheduler logs it in `airflow standalone`'s output (Airflow 3.3).
EVENT = ("scheduler  | 2026-12-02T06:39:59.805018Z [info     ] Received executor event with state success for task "
         "instance TaskInstanceKey(dag_id='{dag}', task_id='{task}', run_id='{run}', try_number=1, map_index=-1) "
         "[airflow.jobs.scheduler_job_runner.SchedulerJobRunner]\n")


def test_the_wait_ends_once_the_scheduler_logs_the_tasks_executor_event(tmp_path):
    log = tmp_path / "airflow.log"
    log.write_text(EVENT.format(dag="d", task="approve", run="r0") + EVENT.format(dag="d", task="plan", run="r1"))
    written = threading.Event()

    def scheduler_takes_it_in() -> None:
        written.set()  # before the line: a wait that returns has seen it only if it waited for it
        with log.open("a") as out:
            out.write(EVENT.format(dag="d", task="approve", run="r1"))

    later = threading.Timer(1.0, scheduler_takes_it_in)
    later.start()
    try:
        wait_until_defer_exit_drained(log, "d", "r1", "approve", timeout=30)
        assert written.is_set()  # it did not end on the lines of another run or task
    finally:
        later.join()


def test_the_wait_does_not_end_on_another_run_or_task(tmp_path):
    log = tmp_path / "airflow.log"
    log.write_text(EVENT.format(dag="d", task="approve", run="r0") + EVENT.format(dag="d", task="plan", run="r1"))
    with pytest.raises(TimeoutError, match="d.approve r1"):
        wait_until_defer_exit_drained(log, "d", "r1", "approve", timeout=1)
