"""Task bodies of gravitypm_backup_verification: verify, audit freshness, write the status."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from gravitypm_ops import status
from gravitypm_ops.airflow.glue import scratch_mongo_client
from gravitypm_ops.config import load_config
from gravitypm_ops.host import checks as host_checks
from gravitypm_ops.names import BACKUP_KINDS
from gravitypm_ops.vault.layout import verified_ok
from gravitypm_ops.vault.store import Vault

log = logging.getLogger(__name__)


def choose(backups_by_kind: dict[str, list[dict]], backup_id: str | None) -> list[dict]:
    """What one run verifies: by default every backup never verified plus, per kind, the one
    verified longest ago (a rotating share, so corruption at rest is found too); `all`; or one id."""
    every = [m for backups in backups_by_kind.values() for m in backups]
    if backup_id == "all":
        return every
    if backup_id:
        chosen = [m for m in every if m["backup_id"] == backup_id]
        if not chosen:
            raise ValueError(f"no committed backup with id {backup_id!r}")
        return chosen
    chosen = [m for m in every if m["verification"] is None]
    for backups in backups_by_kind.values():
        verified = [m for m in backups if m["verification"] is not None]
        if verified:
            chosen.append(min(verified, key=lambda m: m["verification"]["finished"]))
    return chosen


def verify(backup_id: str | None, context) -> dict:
    """Verify the chosen backups; alert Critical on each failure; fail the task if any failed."""
    from gravitypm_ops.airflow.alerts import Severity, clear, fire, recovered_since
    from gravitypm_ops.airflow.glue import fail_fast
    from gravitypm_ops.verification.verify import verify_backup

    cfg = load_config()
    vault = Vault.from_config(cfg)
    try:
        targets = choose({k: vault.list_backups(k) for k in BACKUP_KINDS}, backup_id)
    except ValueError as err:
        raise fail_fast(str(err)) from None
    client = scratch_mongo_client() if any(m["kind"] == "db" for m in targets) else None
    verifier = {"dag_id": context["dag_run"].dag_id, "run_id": context["dag_run"].run_id}
    results = []
    for manifest in targets:
        record = verify_backup(
            vault, manifest, mongo_client=client, scratch_prefix=cfg.scratch_database_prefix,
            production_databases=tuple(cfg.mongo_databases), verifier=verifier,
        )
        failed = [c for c in record["checks"] if c["status"] != "passed"]
        results.append({"kind": manifest["kind"], "backup_id": manifest["backup_id"], "status": record["status"],
                        "failed_checks": [c["name"] for c in failed]})
        # One alert per backup: posted when it starts failing (or fails another way), reminded while
        # re-verifications keep failing, "recovered" when a later verification of it passes.
        kind, bid = manifest["kind"], manifest["backup_id"]
        if failed:
            fire(
                f"verification/{kind}/{bid}",
                f"{Severity.CRITICAL.icon} *[Critical] {kind} backup `{bid}` failed "
                f"verification* (runbook: data corruption)\n"
                + "\n".join(f"• `{c['name']}`: {c['detail']}" for c in failed),
                reason="; ".join(f"{c['name']}: {c['detail']}" for c in failed), cfg=cfg, store=vault,
                facts={"severity": Severity.CRITICAL.value, "last_run": verifier["run_id"]},
            )
        else:
            clear(f"verification/{kind}/{bid}",
                  lambda state, kind=kind, bid=bid: (
                      f"{Severity.INFO.icon} *[Info] {kind} backup `{bid}` recovered*: it passed verification "
                      f"again in run `{verifier['run_id']}` after {recovered_since(state)}."),
                  cfg=cfg, store=vault, facts={"recovered_run": verifier["run_id"]})
    broken = [r for r in results if r["status"] != "passed"]
    if broken:
        raise fail_fast(f"{len(broken)} backup(s) failed verification: "
                        + ", ".join(f"{r['kind']} {r['backup_id']} ({', '.join(r['failed_checks'])})" for r in broken))
    return {"verified": results}


def audit_freshness() -> dict:
    """RPO: the newest committed *and verified* backup of each kind is younger than freshness_hours."""
    cfg = load_config()
    vault = Vault.from_config(cfg)
    newest = {}
    for kind in BACKUP_KINDS:
        verified = [m for m in vault.list_backups(kind) if verified_ok(m)]
        newest[kind] = datetime.fromisoformat(verified[-1]["finished"]) if verified else None
    now = datetime.now(UTC)
    result = host_checks.check_backup_age(newest, cfg.freshness_hours, now, missing_is_breach=True)
    # The off-site copy has the same limits ("<kind> off-site" findings; none while off-site is off).
    result = host_checks.CheckResult(result.check, result.findings + status.freshness_findings(cfg, now))
    return host_checks.report(result)


def write_status() -> dict:
    """The primary vault's status.json (status.write_primary)."""
    cfg = load_config()
    return status.write_primary(cfg, Vault.from_config(cfg), datetime.now(UTC))
