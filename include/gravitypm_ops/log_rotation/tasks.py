"""Task bodies of gravitypm_log_rotation: disk guard, rotate + ship, announce the logs backup."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from gravitypm_ops.config import load_config
from gravitypm_ops.host import checks as host_checks

log = logging.getLogger(__name__)
DISK_ALERT = "log_rotation/logs_disk"  # the alert state key of disk_guard


def disk_guard() -> dict:
    """Runbook "Disk Usage: < 80%" for logs_dir's filesystem: over it, say so in the log and in Slack.

    A warning, not a failure: rotation is what frees the space, so it must still run.
    """
    from gravitypm_ops.airflow.alerts import Severity, clear, fire, recovered_since

    cfg = load_config()
    result = host_checks.check_disk([cfg.logs_path], cfg.disk_min_free_percent)
    for finding in result.findings:
        log.info("[%s] %s: %s", finding.status.upper(), finding.subject, finding.detail)
    limit = 100 - cfg.disk_min_free_percent
    # One alert: posted when the filesystem goes over the limit, reminded while it stays over,
    # "recovered" once it is back under.
    if result.breaches():
        detail = "; ".join(f"`{f.subject}`: {f.detail}" for f in result.breaches())
        log.warning("logs filesystem over %g%% used: %s", limit, detail)
        fire(
            DISK_ALERT,
            f"{Severity.WARNING.icon} *[Warning] gravitypm_log_rotation: the logs filesystem is over "
            f"{limit:g}% used* (runbook: Disk Usage < 80%)\n• {detail}",
            reason=detail, cfg=cfg, facts={"severity": Severity.WARNING.value},
        )
    else:
        clear(DISK_ALERT, lambda state: (
            f"{Severity.INFO.icon} *[Info] gravitypm_log_rotation: the logs filesystem recovered*: back under "
            f"{limit:g}% used (`{cfg.logs_path}`) after {recovered_since(state)}."), cfg=cfg)
    return result.to_dict()


def rotate_and_ship(force: bool, context) -> dict:
    """Rotate logs_dir with the configured directives, ship the rotated files, prune; the report."""
    from zoneinfo import ZoneInfo

    from airflow.sdk.exceptions import AirflowFailException

    from gravitypm_ops.airflow.glue import manifest_summary
    from gravitypm_ops.config.log_rotation import parse_rotation_settings
    from gravitypm_ops.host.service_control import run_service_action
    from gravitypm_ops.log_rotation.engine import Rotation
    from gravitypm_ops.log_rotation.files import RotationError
    from gravitypm_ops.log_rotation.ship import ship_to_vault, shipped_hashes
    from gravitypm_ops.names import schedule_timezone
    from gravitypm_ops.vault.store import Vault

    cfg = load_config()
    settings = parse_rotation_settings(cfg.log_rotation)
    vault = Vault.from_config(cfg)
    dag_run = context["dag_run"]

    def in_vault() -> set[str]:
        # Checked here, not before rotating: with the vault down the logs still rotate (disk space);
        # the task fails with the reason (VaultError), keeps every rotated file, and its retry ships them.
        vault.check_access()
        return shipped_hashes(vault)

    def ship(files) -> dict:
        return manifest_summary(ship_to_vault(
            vault, files, settings=settings, logs_dir=cfg.logs_path, dag_id=dag_run.dag_id, run_id=dag_run.run_id,
        ))

    rotation = Rotation(
        cfg.logs_path, settings, now=datetime.now(UTC), tz=ZoneInfo(schedule_timezone()), force=force,
        postrotate=lambda: run_service_action(cfg, settings["postrotate"]), shipped_elsewhere=in_vault, ship=ship,
    )
    try:
        report = rotation.run()
    except RotationError as err:
        raise AirflowFailException(str(err)) from None
    for name, why in report["skipped"].items():
        log.info("skipped %s: %s", name, why)
    for note in report["notes"] + report["kept"]:
        log.warning("%s", note)
    log.info("rotated %d, compressed %d, shipped %s, pruned %d",
             len(report["rotated"]), len(report["compressed"]), report["shipped"], len(report["pruned"]))
    if report["errors"]:
        # Not retried at once: the rotated files are safe (uncompressed, unshipped) and the next run
        # runs postrotate again before touching them; a human should look at the logging service now.
        raise AirflowFailException("log rotation: " + "; ".join(report["errors"]))
    return report


def announce(report: dict, context) -> dict:
    """The `logs` Asset event with the backup summary; skipped when this run shipped nothing new."""
    from airflow.sdk.exceptions import AirflowSkipException

    from gravitypm_ops.names import backup_asset

    shipped = report.get("shipped") or {}
    if not shipped.get("backup_id"):
        raise AirflowSkipException("nothing new was shipped: no logs backup to announce")
    summary = dict(shipped)  # manifest_summary: backup id, bytes, files, artifacts, run
    context["outlet_events"][backup_asset("logs")].extra = summary
    log.info("logs backup %s committed: %s", summary["backup_id"], summary)
    return summary
