"""The names users rely on stay put: per DAG its task ids, param names, schedule and outlet Asset URIs.

Runbooks, `airflow dags trigger --conf`, API callers, Asset-triggered DAGs and the audit history use
these names, so a refactor must not change them by accident. The golden file was taken from 6b40a14
(before the library was split into packages); what has been added on purpose since is listed in its
"added" section. To re-take it from a tree (on purpose, and say why in the commit; "added" is kept):

    PYTHONPATH=<tree>/include python tests/dags/test_names_stable.py <tree>/dags
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden" / "dag_surface.json"
HOW_TO_UPDATE = "if this is intended, list it under 'added' in tests/dags/golden/dag_surface.json"


def schedule_of(timetable) -> object:
    """A JSON description of a DAG's schedule that is independent of the timezone setting."""
    kind = type(timetable).__name__
    if kind == "NullTimetable":
        return None
    if kind == "CronTriggerTimetable":
        return {"cron": timetable.expression}
    if kind in ("AssetOrTimeSchedule", "AssetTriggeredTimetable"):
        described = {"assets": assets_of(timetable.asset_condition)}
        if kind == "AssetOrTimeSchedule":
            described["or_time"] = schedule_of(timetable.timetable)
        return described
    return {"unknown": kind}  # a new kind of schedule: teach this function, then re-take the golden file


def assets_of(condition) -> object:
    if hasattr(condition, "uri"):
        return condition.uri
    return {type(condition).__name__: [assets_of(c) for c in condition.objects]}


def surface(dags) -> dict:
    return {
        dag.dag_id: {
            "tasks": sorted(dag.task_ids),
            "params": sorted(dag.params.keys()),
            "schedule": schedule_of(dag.timetable),
            "outlets": {
                t.task_id: sorted(o.uri for o in t.outlets) for t in sorted(dag.tasks, key=lambda t: t.task_id) if t.outlets
            },
        }
        for dag in sorted(dags, key=lambda d: d.dag_id)
    }


def differences(golden: dict, current: dict) -> list[str]:
    """Everything in `current` that breaks a name in `golden["dags"]` and is not a planned addition."""
    added = {dag_id: entry for dag_id, entry in golden["added"].items() if not dag_id.startswith("_")}
    problems = []
    for dag_id in sorted(set(current) - set(golden["dags"]) - set(added)):
        problems.append(f"new DAG {dag_id!r} (a renamed one?); {HOW_TO_UPDATE}")
    for dag_id, before in sorted(golden["dags"].items()):
        now = current.get(dag_id)
        if now is None:
            problems.append(f"DAG {dag_id!r} is gone (renamed?)")
            continue
        planned = added.get(dag_id, {})
        for field in ("tasks", "params"):
            for name in sorted(set(before[field]) - set(now[field])):
                problems.append(f"{dag_id}: {field[:-1]} {name!r} is gone (renamed?)")
            for name in sorted(set(now[field]) - set(before[field]) - set(planned.get(field, []))):
                problems.append(f"{dag_id}: new {field[:-1]} {name!r}; {HOW_TO_UPDATE}")
        if now["schedule"] != before["schedule"]:
            problems.append(f"{dag_id}: schedule changed from {before['schedule']} to {now['schedule']}")
        allowed_outlets = {**before["outlets"], **planned.get("outlets", {})}
        for task_id in sorted(set(before["outlets"]) | set(now["outlets"])):
            if now["outlets"].get(task_id) != allowed_outlets.get(task_id):
                problems.append(f"{dag_id}.{task_id}: outlets {now['outlets'].get(task_id)}, "
                                f"expected {allowed_outlets.get(task_id)}")
    return problems


def dump(doc: dict) -> str:
    """JSON with one line per DAG field, so a diff of the golden file reads like the change."""
    top = []
    for key, value in doc.items():
        if not isinstance(value, dict):
            top.append(f"  {json.dumps(key)}: {json.dumps(value)}")
            continue
        entries = []
        for dag_id, entry in value.items():
            if isinstance(entry, dict):
                fields = ",\n".join(f"      {json.dumps(f)}: {json.dumps(v)}" for f, v in entry.items())
                entries.append(f"    {json.dumps(dag_id)}: {{\n{fields}\n    }}")
            else:
                entries.append(f"    {json.dumps(dag_id)}: {json.dumps(entry)}")
        top.append(f"  {json.dumps(key)}: {{\n" + ",\n".join(entries) + "\n  }")
    return "{\n" + ",\n".join(top) + "\n}"


def test_task_ids_params_schedules_and_outlets_are_unchanged(dagbag):
    golden = json.loads(GOLDEN.read_text())
    problems = differences(golden, surface(dagbag.dags.values()))
    assert not problems, "names users rely on changed:\n" + "\n".join(problems)


def test_a_renamed_task_or_param_is_named_in_the_failure():
    # The guard must say what broke, or a red test is no help.
    golden = json.loads(GOLDEN.read_text())
    current = json.loads(json.dumps(golden["dags"]))
    db = current["gravitypm_db_backup"]
    db["tasks"] = [t if t != "apply_retention" else "retention" for t in db["tasks"]]
    db["params"] = ["dry_run"]
    db["outlets"]["dump_to_vault"] = ["gravitypm://vault/database"]
    current["gravitypm_log_rotation"]["tasks"].append("apply_retention")  # planned: not a problem
    problems = "\n".join(differences(golden, current))
    assert "gravitypm_db_backup: task 'apply_retention' is gone" in problems
    assert "gravitypm_db_backup: new task 'retention'" in problems
    assert "gravitypm_db_backup: param 'retention_dry_run' is gone" in problems
    assert "gravitypm_db_backup.dump_to_vault: outlets ['gravitypm://vault/database']" in problems
    assert "gravitypm_log_rotation" not in problems


if __name__ == "__main__":  # re-take the golden file (see the module docstring)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=sys.argv[1])
    assert not bag.import_errors, bag.import_errors
    kept = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    GOLDEN.write_text(dump({
        "_about": kept.get("_about", "DAG names users rely on; see tests/dags/test_names_stable.py"),
        "dags": surface(bag.dags.values()),
        "added": kept.get("added", {}),
    }) + "\n")
