"""Airflow 3.3.2's stale defer-exit race: kept out of the tests' answers, and told apart from a real
failure so that only it is re-run.

A deferring task's worker exits and the executor reports "success" for that try. If a human answers
(or a HITL timeout fires) before the scheduler has drained that event, the resumed try is already
`queued`/`running` when the stale "success" arrives; the scheduler logs "state mismatch" and fails
it (apache/airflow#72716, #71580; 3.3.2 guards only the `scheduled` case). A person never answers
within the scheduler's loop; a loaded test machine does.

- A test's answer waits for the scheduler's log line of that event (`wait_until_defer_exit_drained`):
  the race cannot happen then. Before it, a CI run lost both tries of test_restore_approval to it.
- A HITL timeout is not the test's to time: for that case, the scheduler writes an event log entry
  "state mismatch" for the task instance it killed, and that entry, and nothing else, turns a test's
  failure into UpstreamDeferRace, the one error `@pytest.mark.flaky(reruns=1,
  only_rerun=["UpstreamDeferRace"])` re-runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode


class UpstreamDeferRace(AssertionError):
    """A run failed because Airflow killed a resumed deferred task (apache/airflow#72716)."""


def state_mismatches(api, dag_id: str, run_id: str) -> list[dict]:
    query = urlencode({"dag_id": dag_id, "run_id": run_id, "event": "state mismatch", "limit": 50})
    return api.get(f"/api/v2/eventLogs?{query}")["event_logs"]


@contextmanager
def blame_upstream_defer_race(api) -> Iterator[list[tuple[str, str]]]:
    """Yields a list the test appends its (dag_id, run_id)s to. A failure (assertion or timeout)
    while the scheduler has killed a task of one of those runs becomes UpstreamDeferRace."""
    runs: list[tuple[str, str]] = []
    try:
        yield runs
    except (AssertionError, TimeoutError) as err:
        killed = [(dag_id, run_id, e) for dag_id, run_id in runs for e in state_mismatches(api, dag_id, run_id)]
        if killed:
            dag_id, run_id, event = killed[0]
            raise UpstreamDeferRace(
                f"the scheduler killed {event.get('task_id')} of {dag_id} {run_id} on a stale defer-exit event "
                f"(apache/airflow#72716): {event.get('extra')}") from err
        raise


def wait_until_defer_exit_drained(scheduler_log: Path, dag_id: str, run_id: str, task_id: str,
                                  timeout: float = 180) -> None:
    """Before answering a prompt: wait until the scheduler has taken in the executor's event for the
    try that deferred (it logs every event it takes in). Answered after that, no stale event is left
    to kill the resumed try: the race cannot happen, as with a person, who never answers that fast."""
    needle = f"for task instance TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}'"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(scheduler_log, errors="replace") as log:
            if any("Received executor event" in line and needle in line for line in log):
                return
        time.sleep(0.5)
    raise TimeoutError(f"the scheduler took in no executor event for {dag_id}.{task_id} {run_id} within {timeout:.0f}s")
