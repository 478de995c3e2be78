"""The re-run guard turns a failure into UpstreamDeferRace only when Airflow logged a state mismatch."""

import pytest

from tests.upstream_races import UpstreamDeferRace, blame_upstream_defer_race


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
