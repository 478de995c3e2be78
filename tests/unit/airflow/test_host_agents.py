"""The host agent watch's decisions (airflow/host_agents.py), the morning checklist's "host agent online"
finding, and the `host_agent_timeout_minutes` config key. The DB reads and writes: tests/integration/
test_host_agent_watch.py."""

from datetime import UTC, datetime, timedelta

import pytest

from gravitypm_ops.airflow.host_agents import agent_status, describe_agents, failure_note, overdue, waiting_since
from gravitypm_ops.checklists.evidence.host import host_agent_finding
from gravitypm_ops.config import ConfigError, parse_config
from gravitypm_ops.names import HOST_EXECUTOR_ENV

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REQUEUE = timedelta(seconds=600)
TIMEOUT = timedelta(minutes=15)
EDGE = "airflow.providers.edge3.executors.EdgeExecutor"


def ago(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat()


def task(task_id: str, state: str = "queued", scheduled=None, queued=None, first_requeue=None) -> dict:
    return {"id": task_id, "dag_id": "gravitypm_fs_backup", "task_id": task_id, "run_id": "manual__1",
            "map_index": -1, "try_number": 1, "state": state, "scheduled": scheduled, "queued": queued,
            "first_requeue": first_requeue}


def agent(state: str, heartbeat_minutes_ago: float | None = None, name: str = "gravitypm-host-1") -> dict:
    return {"worker": name, "state": state, "online": state in ("starting", "idle", "running"),
            "last_heartbeat": None if heartbeat_minutes_ago is None else ago(heartbeat_minutes_ago),
            "queues": ["gravitypm_host"]}


def due_ids(waiting, agents) -> list[str]:
    return [t["task_id"] for t in overdue(waiting, agents, now=NOW, timeout=TIMEOUT, requeue_after=REQUEUE)]


def test_a_task_waiting_past_the_timeout_with_no_agent_online_is_due():
    waiting = [task("old", scheduled=ago(20), queued=ago(19)), task("young", scheduled=ago(5), queued=ago(5)),
               task("just", queued=ago(15))]
    assert due_ids(waiting, [agent("offline", 60)]) == ["old", "just"]  # the timeout is inclusive
    assert due_ids(waiting, []) == ["old", "just"]  # no agent ever registered
    assert due_ids(waiting, None) == ["old", "just"]  # no edge tables at all
    found = overdue(waiting, [], now=NOW, timeout=TIMEOUT, requeue_after=REQUEUE)
    assert found[0]["waited_minutes"] == 20


def test_nothing_is_due_while_any_agent_is_online():
    waiting = [task("old", queued=ago(120))]
    assert due_ids(waiting, [agent("offline", 100, "host-2"), agent("idle", 0)]) == []
    assert due_ids(waiting, [agent("running", 0)]) == []
    # Maintenance takes no jobs: not online.
    assert due_ids(waiting, [agent("maintenance mode", 0)]) == ["old"]


def test_the_wait_counts_from_when_the_last_agent_went_away():
    waiting = [task("old", queued=ago(60))]
    assert due_ids(waiting, [agent("unknown", 10)]) == []  # the agent vanished 10 min ago
    assert due_ids(waiting, [agent("offline", 16), agent("unknown", 30, "host-2")]) == ["old"]


def test_airflows_requeue_does_not_reset_the_wait():
    # The scheduler requeued it (scheduled/queued times reset 1 min ago) 11 min ago, after 10 min queued.
    requeued = task("requeued", state="scheduled", scheduled=ago(1), first_requeue=ago(11))
    assert waiting_since(requeued, REQUEUE) == NOW - timedelta(minutes=21)
    assert due_ids([requeued], []) == ["requeued"]
    assert waiting_since(task("never"), REQUEUE) is None and due_ids([task("never")], []) == []


def test_messages_name_agents_states_and_last_heartbeats():
    assert describe_agents([]) == "no host agent has registered for queue gravitypm_host"
    line = describe_agents([agent("offline", 30), agent("idle", 0, "host-2")])
    assert line == "gravitypm-host-1 offline, last heartbeat 2026-12-01 11:30 UTC; host-2 idle"
    assert agent_status([agent("idle", 0)]) == (True, "online: gravitypm-host-1 idle")
    online, detail = agent_status([agent("unknown", 5)])
    assert not online and detail.startswith("offline: gravitypm-host-1 unknown, last heartbeat 2026-12-01 11:55 UTC")
    assert agent_status(None)[0] is False
    note = failure_note({**task("preflight"), "waited_minutes": 16}, [agent("offline", 30)], 15)
    assert note.startswith("Failed by gravitypm_host_agent_watch: no host agent online for queue gravitypm_host")
    assert "waited 16 min (queued), host_agent_timeout_minutes is 15" in note and "gravitypm-host-1 offline" in note
    assert len(failure_note({**task("x" * 2000), "waited_minutes": 1}, [agent("offline", 1)] * 50, 15)) <= 1000


def test_the_checklist_finding_is_not_used_on_a_single_box_and_judged_in_split_mode(monkeypatch):
    monkeypatch.delenv(HOST_EXECUTOR_ENV, raising=False)
    assert host_agent_finding(lambda: pytest.fail("a single box reads no agents")) == {
        "subject": "host agent", "outcome": "passed", "detail": "not used (single box: host tasks run on the control plane)"}
    monkeypatch.setenv(HOST_EXECUTOR_ENV, EDGE)
    assert host_agent_finding(lambda: [agent("idle", 0)])["outcome"] == "passed"
    offline = host_agent_finding(lambda: [agent("offline", 3)])
    assert offline["outcome"] == "failed" and "gravitypm-host-1 offline" in offline["detail"]
    assert host_agent_finding(lambda: None)["outcome"] == "failed"  # Edge executor named, no edge tables

    def broken():
        raise RuntimeError("reading failed: postgresql://airflow:s3cret@db/airflow refused")

    unknown = host_agent_finding(broken)
    assert unknown["outcome"] == "failed" and "state unknown" in unknown["detail"] and "s3cret" not in unknown["detail"]


def test_host_agent_timeout_minutes_defaults_to_15_and_must_be_a_whole_number_of_at_least_1():
    assert parse_config(None).host_agent_timeout_minutes == 15
    assert parse_config({"host_agent_timeout_minutes": 1}).host_agent_timeout_minutes == 1
    for bad in (0, 2.5, "15", True, None):
        with pytest.raises(ConfigError, match="host_agent_timeout_minutes"):
            parse_config({"host_agent_timeout_minutes": bad})
