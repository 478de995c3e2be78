"""
### GravityPM disaster-recovery drill (runbook: Disaster Recovery; quarterly)

Triggered by hand or by the quarterly checklist. Restores the chosen backups into **isolated
targets** (never production), validates them against their manifests and measures what the
runbook promises: **RTO** (wall time from download to a validated restore, per component and in
total) and **RPO** (age of each restored backup at the drill's start, or at `as_of`).
The run's state is the drill's verdict: a failed run means a failed drill.

1. `plan_drill` — checks every parameter and picks each component's backup (the latest
   verified one, or the latest at or before `as_of`). Refuses, writing nothing, when the scratch
   database is a `mongo_databases` one or lacks `scratch_database_prefix`, when the scratch
   directory resolves to `/` or into `app_root` / `restore_allowed_roots`, for an unknown
   component, or when no backup exists as of `as_of`.
2. `hold_leases` — a retention lease per kind on the source vault: retention keeps every
   backup of the kind while the drill runs. `release_leases` drops them whatever happened.
3. `drill_db`, `drill_fs`, `drill_config` — restore + validation, verification's own checks
   pointed at the drill's targets: db into the scratch database (`gravitypm_mongo_scratch`,
   else `gravitypm_mongo` with scratch names only) with counts, indexes, options and a
   byte-for-byte sample vs the manifest; fs/config into `<scratch_dir>/<drill id>/<kind>/`
   (default a fresh temp dir) with every file's sha256 vs the index. `cleanup: false` keeps
   the restored data for inspection (the report names where). Red when the restore fails.
4. `write_report` — `<vault_prefix>/drills/<drill id>/report.json` and `report.md`
   (never overwritten); then `post_summary` (Slack: verdict, per component RTO / RPO vs
   targets, backup ids) and `record_audit` (one record in the `dr_drill` audit history).
5. `judge_drill` — red when a component failed or missed a target (RPO per kind:
   `rpo_target_hours`, else `freshness_hours`; RTO: `rto_target_minutes`, per component and total).
"""

from __future__ import annotations

from airflow.sdk import Param, TriggerRule, dag, task

from gravitypm_ops.airflow.conventions import NO_RETRY, dag_kwargs, fail_run_if_any_check_failed
from gravitypm_ops.names import PATH_MAX, SCRATCH_DB_NAME_PATTERN

COMPONENTS = ("db", "fs", "config")
WHAT = "What to restore"
TARGETS = "Targets (pass / fail)"
ISOLATION = "Isolated DR targets (never production)"


@dag(
    dag_id="gravitypm_dr_drill",
    params={
        "components": Param(
            list(COMPONENTS), type="array", items={"type": "string", "enum": list(COMPONENTS)},
            uniqueItems=True, minItems=1, examples=list(COMPONENTS), section=WHAT, title="Components",
            description="Which backups to restore: db (MongoDB), fs (application files), config.",
        ),
        "as_of": Param(
            None, type=["null", "string"], format="date-time", section=WHAT, title="As of",
            description="Empty: the latest verified backup of each component. A time: the latest backup "
                        "at or before it (RPO is then measured at that time).",
        ),
        "source": Param(
            "primary", type="string", enum=["primary", "offsite"], section=WHAT, title="Source vault",
            description="primary: the vault bucket; offsite: the off-site copy (offsite_bucket).",
        ),
        "rto_target_minutes": Param(
            60, type="number", exclusiveMinimum=0, section=TARGETS, title="RTO target (minutes)",
            description="Longest acceptable time from download to a validated restore (per component and total).",
        ),
        "rpo_target_hours": Param(
            None, type=["null", "number"], exclusiveMinimum=0, section=TARGETS, title="RPO target (hours)",
            description="Oldest acceptable restored backup. Empty: each kind's freshness_hours (db 7, fs/config 26).",
        ),
        "scratch_database": Param(
            None, type=["null", "string"], pattern=SCRATCH_DB_NAME_PATTERN, section=ISOLATION,
            title="Scratch database",
            description="Empty: <scratch_database_prefix>drill. Must start with scratch_database_prefix and "
                        "never be a production database nor MongoDB's admin, local or config.",
        ),
        "scratch_dir": Param(
            None, type=["null", "string"], pattern="^/[^\\u0000]*$", maxLength=PATH_MAX - 1, section=ISOLATION,
            title="Scratch directory",
            description="Empty: a fresh temporary directory. Files go to <dir>/<drill id>/<kind>/; never / or "
                        "inside app_root or restore_allowed_roots.",
        ),
        "cleanup": Param(
            True, type="boolean", section=ISOLATION, title="Clean up",
            description="Drop the scratch database and remove the restored files afterwards. Off: keep them "
                        "for inspection (the report says where).",
        ),
    },
    **dag_kwargs(schedule=None, doc_md=__doc__, extra_tags=("restore", "drill")),
)
def gravitypm_dr_drill():
    @task(**NO_RETRY)
    def plan_drill(params=None, **context):
        from gravitypm_ops.drill import tasks as drill_tasks

        return drill_tasks.plan_task(params, context)

    @task
    def hold_leases(plan, **context):
        from gravitypm_ops.drill import tasks as drill_tasks

        return drill_tasks.hold_task(plan, context)

    def component(kind: str):
        @task(task_id=f"drill_{kind}", **NO_RETRY)  # a repeat would distort the measured RTO
        def drill_component(plan, **context):
            from gravitypm_ops.drill import tasks as drill_tasks

            return drill_tasks.component_task(kind, plan, context)

        return drill_component

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def release_leases(**context):
        from gravitypm_ops.drill import tasks as drill_tasks

        return drill_tasks.release_task(context)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def write_report(**context):
        from gravitypm_ops.drill import tasks as drill_tasks

        return drill_tasks.report_task(context)

    @task
    def post_summary(report):
        from gravitypm_ops.drill import tasks as drill_tasks

        drill_tasks.post_summary_task(report)

    @task
    def record_audit(report):
        from gravitypm_ops.drill import tasks as drill_tasks

        return drill_tasks.record_audit_task(report)

    @task(**NO_RETRY)
    def judge_drill(report):
        from gravitypm_ops.drill import tasks as drill_tasks

        return drill_tasks.judge_task(report)

    plan = plan_drill()
    leases = hold_leases(plan)
    restores = [component(kind)(plan) for kind in COMPONENTS]
    leases >> restores
    release = release_leases()
    restores >> release
    report = write_report()
    restores >> report
    steps = [post_summary(report), record_audit(report), judge_drill(report)]
    [plan, leases, *restores, release, report, *steps] >> fail_run_if_any_check_failed()


gravitypm_dr_drill()
