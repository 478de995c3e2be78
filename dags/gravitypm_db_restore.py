"""
### GravityPM database restore (runbook: Recovery Procedures, "Database Recovery")

Triggered by hand from the trigger form. The steps are the runbook's, with guards:

1. **plan**: validates every param against the vault and the config *before anything changes*
   and logs the plan (backup id, age, size, verified?, target, collections). Refused: an unknown
   backup id, a backup that failed or never had a verification (unless `allow_unverified`), a
   database or collection the backup does not have, MongoDB's own databases (`admin`, `local`,
   `config`, in any case) as source or target, any `system.*` collection, a `backup_id` longer
   than 64 characters, an artifact whose size or SHA-256 no longer matches the manifest (the plan
   re-reads it, so an altered backup never gets as far as the safety backup or stopping the app),
   and a production target (one of `mongo_databases`, compared case-insensitively as MongoDB
   does) without `confirm` = its name (type-to-confirm).
2. **approve** (production targets, unless `require_approval` is false): a human approves in
   *Required Actions*; who approved goes into the report. Reject or time-out: nothing changes.
3. **safety_backup**: a normal `db` backup of the target as it is now, tagged `purpose: safety`,
   kept by retention for 14 days and never chosen as `latest`; the rollback point.
4. **stop_app** → **restore** → **start_app**: `docker compose … stop app` (the `service_commands`
   config key), the restore (staged collections, artifact SHA-256 checked, then swapped in all or
   none, counts checked against the manifest), and `start app` again, which runs even when the
   restore failed. stop_app and start_app run on the host (its agent); `needs_stop` / `needs_start`
   skip them when the plan stops nothing (a non-production target), so such a restore runs with no
   host agent online (disaster recovery from the backup site).
5. **validate**: the `health_urls` answer 2xx; per-collection counts next to the manifest.
6. **report**: one Slack message with the outcome; on failure it names the safety backup to
   roll back to (restore it by id).

`dry_run` is on when the form opens: it runs only the plan and the report (changing nothing).
A real restore: switch `dry_run` off (and type `confirm` for a production target). Retention keeps every `db` backup while the
run is active (a lease in the vault). Pool `gravitypm_db`: never beside a DB backup.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, TriggerRule, dag, task

from gravitypm_ops.airflow.alerts import Severity
from gravitypm_ops.airflow.approval import RestoreApproval
from gravitypm_ops.airflow.conventions import NO_RETRY, dag_kwargs, fail_run_if_any_check_failed
from gravitypm_ops.names import (
    BACKUP_REF_MAX_LENGTH,
    BACKUP_REF_PATTERN,
    COLLECTION_NAME_MAX_LENGTH,
    COLLECTION_NAME_PATTERN,
    DB_NAME_PATTERN,
    DB_POOL,
    backup_asset,
    host_placement,
)

WHAT = "What to restore"
WHERE = "Where to restore it"
SAFETY = "Safety"


@dag(
    dag_id="gravitypm_db_restore",
    params={
        "backup_id": Param(
            "latest", type="string", pattern=BACKUP_REF_PATTERN, maxLength=BACKUP_REF_MAX_LENGTH, section=WHAT,
            title="Backup",
            description="A backup id (see the Backups page), `latest` (newest verified) or `latest@<ISO time>`.",
        ),
        "source": Param(
            "primary", type="string", enum=["primary", "offsite"], section=WHAT, title="Vault",
            description="Read the backup from the primary vault or the off-site copy.",
        ),
        "source_database": Param(
            "gravitypm_production", type="string", pattern=DB_NAME_PATTERN, section=WHAT,
            title="Database in the backup", description="Which database of the backup to restore.",
        ),
        "collections": Param(
            [], type="array", section=WHAT, title="Collections",
            items={"type": "string", "minLength": 1, "maxLength": COLLECTION_NAME_MAX_LENGTH,
                   "pattern": COLLECTION_NAME_PATTERN},
            description="Only these collections (one per line); empty restores every collection of the "
                        "database. Never system.* collections.",
        ),
        "target_database": Param(
            "gravitypm_production", type="string", pattern=DB_NAME_PATTERN, section=WHERE,
            title="Target database", description="Restore into this database (its collections are replaced). Never MongoDB's own "
                        "admin, local or config.",
        ),
        "dry_run": Param(True, type="boolean", section=SAFETY, title="Dry run",
                         description="On (the default): only validate and show the plan; change nothing. "
                                     "A real restore: switch it off (and confirm a production target)."),
        "allow_unverified": Param(
            False, type="boolean", section=SAFETY, title="Allow an unverified backup",
            description="Restore a backup whose verification failed or never ran. Last resort only.",
        ),
        "require_approval": Param(
            None, type=["null", "boolean"], section=SAFETY, title="Require approval",
            description="Wait for a human approval in Required Actions. Empty: yes for a production target.",
        ),
        "confirm": Param(
            None, type=["null", "string"], maxLength=64, section=SAFETY, title="Confirm",
            description="Only for a real restore into a production target: type the target database name. "
                        "Empty otherwise.",
        ),
    },
    **dag_kwargs(schedule=None, doc_md=__doc__, severity=Severity.CRITICAL, extra_tags=("restore", "db")),
)
def gravitypm_db_restore():
    @task(**NO_RETRY)
    def plan(params=None, **context):
        from gravitypm_ops.restore.tasks import plan

        return plan("db", params, context)

    @task.branch(**NO_RETRY)
    def decide(the_plan: dict):
        from gravitypm_ops.restore.tasks import choose_path

        return choose_path(the_plan)

    approve = RestoreApproval(
        task_id="approve",
        subject="Approve the restore of {{ params.target_database }} ({{ run_id }})",
        body=(
            "A restore will **replace** collections of `{{ params.target_database }}`.\n\n"
            "```\n{{ ti.xcom_pull(task_ids='plan') | tojson(indent=2) }}\n```\n\n"
            "A safety backup of the target is taken first. Approve only if this is the intended backup."
        ),
        response_timeout=timedelta(hours=4),
        ignore_downstream_trigger_rules=False,  # a Reject skips the restore; the report still runs
        **NO_RETRY,
    )

    @task(pool=DB_POOL, outlets=[backup_asset("db")], trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def safety_backup(the_plan: dict, **context):
        from gravitypm_ops.restore.tasks import take_safety_backup

        return take_safety_backup(the_plan, context)

    # The app is stopped and started on the host, by the host agent; whether that is needed is decided here,
    # on the control plane, so a restore with nothing to stop (a non-production target) needs no agent.
    @task.branch(**NO_RETRY)
    def needs_stop(**context):
        from gravitypm_ops.restore.tasks import choose_stop

        return choose_stop(context)

    @task(**host_placement(), **NO_RETRY)  # service control runs on the host (docker compose)
    def stop_app(the_plan: dict, **context):
        from gravitypm_ops.restore.tasks import stop_app

        return stop_app(the_plan, context)

    # After the branch either stop_app ran or was skipped; skipped everywhere (a dry run, a reject) skips this.
    # The plan is pulled, not passed: as an argument it would be an upstream success that runs this anyway.
    @task(pool=DB_POOL, execution_timeout=timedelta(hours=4), trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
          **NO_RETRY)
    def restore(**context):
        from gravitypm_ops.restore.tasks import pulled_plan, restore_db

        return restore_db(pulled_plan(context))

    @task.branch(trigger_rule=TriggerRule.ALL_DONE, **NO_RETRY)  # also when the restore failed
    def needs_start(**context):
        from gravitypm_ops.restore.tasks import choose_start

        return choose_start(context)

    @task(**host_placement(), **NO_RETRY)
    def start_app(**context):
        from gravitypm_ops.restore.tasks import start_app

        return start_app(context)

    @task(retries=3, retry_delay=timedelta(seconds=20),  # the app needs a moment to come up
          trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)  # start_app is skipped when nothing stopped
    def validate(**context):
        from gravitypm_ops.restore.tasks import pulled_plan, validate

        return validate(pulled_plan(context))

    @task(trigger_rule=TriggerRule.ALL_DONE, **NO_RETRY)
    def report(**context):
        from gravitypm_ops.restore.tasks import report

        return report(context)

    the_plan = plan()
    branch = decide(the_plan)
    safety = safety_backup(the_plan)
    stop_branch = needs_stop()
    stopped = stop_app(the_plan)
    restored = restore()
    start_branch = needs_start()
    started = start_app()
    validated = validate()
    done = report()
    branch >> [approve, safety, done]
    approve >> safety >> stop_branch >> [stopped, restored]
    stopped >> restored >> start_branch >> started >> validated >> done
    restored >> validated  # validate only what was restored
    # Not the two branches: a branch skips each direct downstream task it does not choose, the watcher too if
    # it has not run yet (a failed plan then ended as a green run when needs_start ran first). A failed branch
    # still fails the run: the tasks after it are upstream_failed.
    [the_plan, safety, stopped, restored, started, validated] >> fail_run_if_any_check_failed()


gravitypm_db_restore()
