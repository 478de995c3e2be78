"""Every backup kind has its primary retention wired into a DAG, after the step that writes it.

A kind without one grows in the vault for ever, and nothing else would say so: the off-site copy
has its own retention, and the backups themselves succeed either way.
"""

from __future__ import annotations

import pytest

from gravitypm_ops.backup import tasks as backup_tasks
from gravitypm_ops.names import BACKUP_KINDS, VAULT_POOL, backup_asset


def retention_steps(dagbag, monkeypatch) -> dict[str, list]:
    """{kind: [tasks that apply its primary retention]}, found by running each candidate task body
    with backup.tasks.apply_retention replaced by a recorder (nothing touches the vault)."""
    calls: list[tuple] = []
    monkeypatch.setattr(backup_tasks, "apply_retention", lambda kind, dry_run: calls.append((kind, dry_run)))
    found: dict[str, list] = {kind: [] for kind in BACKUP_KINDS}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            code = getattr(getattr(task, "python_callable", None), "__code__", None)
            # only bodies that import gravitypm_ops.backup and call apply_retention are run
            if code is None or not {"gravitypm_ops.backup", "apply_retention"} <= set(code.co_names):
                continue
            calls.clear()
            task.python_callable(params={"retention_dry_run": True})
            for kind, dry_run in calls:
                assert dry_run is True, f"{dag.dag_id}.{task.task_id}: retention_dry_run not passed on"
                found.setdefault(kind, []).append(task)
    return found


def writers_of(dag, kind: str) -> set[str]:
    """The task announcing the kind's Asset and what it directly follows (the one that ships)."""
    announcing = [t for t in dag.tasks if backup_asset(kind).uri in {o.uri for o in t.outlets}]
    return {t.task_id for t in announcing} | {u for t in announcing for u in t.upstream_task_ids}


def test_every_backup_kind_has_retention_after_its_backup(dagbag, monkeypatch):
    found = retention_steps(dagbag, monkeypatch)
    assert set(found) == set(BACKUP_KINDS), f"retention for unknown kinds: {set(found) - set(BACKUP_KINDS)}"
    for kind in BACKUP_KINDS:
        assert found[kind], f"no DAG applies the primary retention of {kind!r} backups"
        for task in found[kind]:
            where = f"{task.dag_id}.{task.task_id} ({kind})"
            assert task.pool == VAULT_POOL, f"{where}: pool {task.pool!r}; never beside a verification"
            assert "retention_dry_run" in task.dag.params, f"{where}: the DAG has no retention_dry_run param"
            upstream = task.get_flat_relative_ids(upstream=True)
            assert upstream & writers_of(task.dag, kind), f"{where}: does not run after the {kind} backup"


@pytest.mark.parametrize("kind", ["db", "logs"])
def test_a_missing_retention_step_would_be_found(dagbag, monkeypatch, kind):
    # The guard must be able to fail: without the step, the kind is reported as having none.
    dag = next(d for d in dagbag.dags.values() if d.has_task("apply_retention")
               and any(backup_asset(kind).uri in {o.uri for o in t.outlets} for t in d.tasks))
    hidden = dag.task_dict.pop("apply_retention")
    try:
        assert retention_steps(dagbag, monkeypatch)[kind] == []
    finally:
        dag.task_dict["apply_retention"] = hidden
