"""
### GravityPM file-system and configuration restore (runbook: Recovery Procedures, "File System Recovery")

Triggered by hand from the trigger form, for `fs` or `config` backups:

1. **plan**: validates every param before anything changes. `target_path` (default: the
   original location, `app_root`) must lie inside `restore_allowed_roots`; the production root
   (`app_root` or below) needs `confirm` = the target path (type-to-confirm). Refused as well: an
   unknown backup id, a backup of the other kind, an unverified or failed backup (unless
   `allow_unverified`), a `paths` glob that matches nothing, a backup whose index holds an unsafe
   path (absolute, `..`, NUL, a hard link out of the archive), a `target_path` that is not a
   directory, holds a NUL or is too long for the filesystem (PATH_MAX / NAME_MAX, also for the
   longest index path below it), and a restore whose files would not fit in the target
   filesystem's free space. `dry_run` is on when the form opens (a real restore: switch it off,
   and confirm the production root); then the plan lists what would be created, replaced,
   left unchanged and left alone (or, with `mirror`, removed), by the same path rules and without
   following any link on disk (a symlink is compared as a symlink).
2. **stop_app** (production root, unless `stop_services` is false) → **restore** → **start_app**
   (runs even when the restore failed). The restore is one step: the archive is extracted into
   staging inside the target (never outside it: absolute paths, `..`, links out and devices are
   refused), every file is checked against the index's sha256 and the archive against the
   manifest's SHA-256, and only then moved into place. Files on disk the backup lacks are left
   alone unless `mirror` is set.
3. **report**: one Slack message with the outcome.

Runs on queue/pool `gravitypm_host` (a worker on the application host).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, TriggerRule, dag, task

from gravitypm_ops.airflow.alerts import Severity
from gravitypm_ops.airflow.conventions import NO_RETRY, dag_kwargs, fail_run_if_any_check_failed
from gravitypm_ops.names import BACKUP_REF_MAX_LENGTH, BACKUP_REF_PATTERN, HOST_POOL, PATH_MAX, host_placement

WHAT = "What to restore"
WHERE = "Where to restore it"
SAFETY = "Safety"


@dag(
    dag_id="gravitypm_fs_restore",
    params={
        "kind": Param("fs", type="string", enum=["fs", "config"], section=WHAT, title="Kind",
                      description="`fs`: the application file system; `config`: the configuration files."),
        "backup_id": Param(
            "latest", type="string", pattern=BACKUP_REF_PATTERN, maxLength=BACKUP_REF_MAX_LENGTH, section=WHAT,
            title="Backup",
            description="A backup id, `latest` (newest verified) or `latest@<ISO time>`.",
        ),
        "source": Param("primary", type="string", enum=["primary", "offsite"], section=WHAT, title="Vault",
                        description="Read the backup from the primary vault or the off-site copy."),
        "paths": Param(
            [], type="array", section=WHAT, title="Paths",
            items={"type": "string", "minLength": 1, "maxLength": PATH_MAX - 1, "pattern": "^[^\\u0000]*$"},
            description="Only archive paths matching these globs (e.g. `uploads/projects/*`); empty: everything.",
        ),
        "target_path": Param(
            None, type=["null", "string"], pattern="^/[^\\u0000]*$", maxLength=PATH_MAX - 1, section=WHERE,
            title="Target path",
            description="An absolute directory inside restore_allowed_roots. Empty: the original location (app_root).",
        ),
        "mirror": Param(False, type="boolean", section=WHERE, title="Mirror",
                        description="Also REMOVE files under the restored paths that the backup does not have."),
        "dry_run": Param(True, type="boolean", section=SAFETY, title="Dry run",
                         description="On (the default): list what would be created / replaced / left / removed; "
                                     "change nothing. A real restore: switch it off (and confirm the production root)."),
        "stop_services": Param(None, type=["null", "boolean"], section=SAFETY, title="Stop the app",
                               description="Stop the app during the restore. Empty: yes for the production root."),
        "allow_unverified": Param(False, type="boolean", section=SAFETY, title="Allow an unverified backup",
                                  description="Restore a backup whose verification failed or never ran."),
        "confirm": Param(None, type=["null", "string"], maxLength=PATH_MAX - 1, section=SAFETY, title="Confirm",
                         description="Only for a real restore into the production root: type the target path. "
                                     "Empty otherwise."),
    },
    **dag_kwargs(schedule=None, doc_md=__doc__, severity=Severity.CRITICAL, extra_tags=("restore", "fs", "config")),
)
def gravitypm_fs_restore():
    @task(**host_placement(), **NO_RETRY)  # the dry run looks at the host's files
    def plan(params=None, **context):
        from gravitypm_ops.restore.tasks import plan

        return plan("files", params, context)

    @task.short_circuit(ignore_downstream_trigger_rules=False, **NO_RETRY)
    def go_on(the_plan: dict):
        return not the_plan["dry_run"]

    @task(**host_placement(), **NO_RETRY)
    def stop_app(the_plan: dict, **context):
        from gravitypm_ops.restore.tasks import stop_app

        return stop_app(the_plan, context)

    @task(**host_placement(), pool=HOST_POOL, execution_timeout=timedelta(hours=6), **NO_RETRY)
    def restore(the_plan: dict):
        from gravitypm_ops.restore.tasks import restore_files

        return restore_files(the_plan)

    @task(**host_placement(), trigger_rule=TriggerRule.ALL_DONE)
    def start_app(**context):
        from gravitypm_ops.restore.tasks import start_app

        return start_app(context)

    @task(trigger_rule=TriggerRule.ALL_DONE, **NO_RETRY)
    def report(**context):
        from gravitypm_ops.restore.tasks import report

        return report(context)

    the_plan = plan()
    gate = go_on(the_plan)
    stopped = stop_app(the_plan)
    restored = restore(the_plan)
    started = start_app()
    done = report()
    gate >> [stopped, restored]  # a dry run skips both; the report still runs
    stopped >> restored >> started >> done
    [the_plan, stopped, restored, started] >> fail_run_if_any_check_failed()


gravitypm_fs_restore()
