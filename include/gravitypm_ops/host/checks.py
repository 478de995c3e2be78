"""Host and vault probes as plain functions returning `CheckResult`s.

Each function measures one thing and judges it against a threshold. A breach is a
`status="breach"` finding; informational findings are warnings. The checklists wrap them as
evidence (checklists/evidence/, passed / warning / failed); verification's freshness audit,
restore validation and log rotation use them directly (`report` publishes one as a task result).
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

from gravitypm_ops.redact import scrub

OK, WARNING, BREACH = "ok", "warning", "breach"


@dataclass(frozen=True)
class Finding:
    subject: str
    status: str
    detail: str


@dataclass(frozen=True)
class CheckResult:
    check: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        statuses = {f.status for f in self.findings}
        return BREACH if BREACH in statuses else WARNING if WARNING in statuses else OK

    def breaches(self) -> list[Finding]:
        return [f for f in self.findings if f.status == BREACH]

    def to_dict(self) -> dict:
        return {"check": self.check, "status": self.status, "findings": [asdict(f) for f in self.findings]}


RESULT_KEY = "check"  # the XCom key `report` publishes a result under


def report(result: CheckResult) -> dict:
    """Publish a result from a task (XCom `check`) *before* failing it on a breach (no retry:
    re-measuring a breach at once would only delay the alert)."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    payload = result.to_dict()
    get_current_context()["ti"].xcom_push(key=RESULT_KEY, value=payload)
    for finding in result.findings:
        print(f"[{finding.status.upper()}] {finding.subject}: {finding.detail}")
    if result.breaches():
        raise AirflowFailException(
            f"{result.check}: " + "; ".join(f"{f.subject}: {f.detail}" for f in result.breaches())
        )
    return payload


def check_health(urls: Mapping[str, str], timeout: float = 10.0) -> CheckResult:
    """Runbook `curl -f <url>`: every endpoint must answer 2xx within `timeout` seconds."""
    findings = []
    for name, url in urls.items():
        shown = scrub(url)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                findings.append(Finding(name, OK, f"{shown} answered {response.status}"))
        except urllib.error.HTTPError as err:
            findings.append(Finding(name, BREACH, f"{shown} answered {err.code}"))
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            findings.append(Finding(name, BREACH, f"{shown} unreachable: {scrub(str(reason))}"))
    return CheckResult("service_health", tuple(findings))


def check_disk(paths, min_free_percent: float, usage=shutil.disk_usage) -> CheckResult:
    """Runbook "Check disk space (> 20% free)" for the filesystem of each path."""
    findings = []
    for path in paths:
        try:
            total, _used, free = usage(path)
        except FileNotFoundError:
            findings.append(Finding(path, BREACH, "path does not exist"))
            continue
        free_pct = 100.0 * free / total if total else 0.0
        status = OK if free_pct > min_free_percent else BREACH
        findings.append(
            Finding(path, status, f"{free_pct:.1f}% free ({free / 2**30:.1f} of {total / 2**30:.1f} GiB); "
                    f"needs > {min_free_percent:g}%")
        )
    return CheckResult("disk_space", tuple(findings))


def check_memory(max_used_percent: float, used_percent: float | None = None) -> CheckResult:
    """Runbook "Memory Usage: < 85%" (available memory, as `free -h` shows it)."""
    if used_percent is None:
        import psutil

        used_percent = psutil.virtual_memory().percent
    status = OK if used_percent < max_used_percent else BREACH
    return CheckResult(
        "memory", (Finding("memory", status, f"{used_percent:.1f}% used; must stay < {max_used_percent:g}%"),)
    )


def check_backup_age(
    latest: Mapping[str, datetime | None], freshness_hours: Mapping[str, float], now: datetime,
    *, missing_is_breach: bool = False,
) -> CheckResult:
    """Runbook "Verify backup completion": the newest backup of each kind is fresh enough.

    No backup of a kind yet is a warning (a new installation) unless `missing_is_breach`
    (the verification DAG's RPO audit: a backup that never happened is the failure it exists for).
    """
    findings = []
    for kind, finished in latest.items():
        limit = freshness_hours[kind]
        if finished is None:
            findings.append(Finding(kind, BREACH if missing_is_breach else WARNING, "no backup yet"))
            continue
        age_h = (now - finished).total_seconds() / 3600
        status = OK if age_h <= limit else BREACH
        findings.append(Finding(kind, status, f"last backup {age_h:.1f} h ago (limit {limit:g} h)"))
    return CheckResult("backup_age", tuple(findings))


def _rule_covers(rule: Mapping, prefix: str) -> bool:
    if rule.get("Status") != "Enabled":
        return False
    flt = rule.get("Filter", {})
    rule_prefix = flt.get("Prefix", flt.get("And", {}).get("Prefix", rule.get("Prefix", "")))
    return prefix.startswith(rule_prefix or "")


def check_vault_hygiene(settings: Mapping, prefix: str) -> CheckResult:
    """The bucket settings that make retention and failed uploads safe (README: "Vault bucket")."""
    rules = [r for r in settings.get("lifecycle_rules", []) if _rule_covers(r, prefix + "/")]
    versioned = settings.get("versioning") == "Enabled"
    findings = [
        Finding("versioning", OK if versioned else BREACH,
                "enabled" if versioned else "off: an overwritten or deleted backup cannot be recovered"),
        Finding("abort_incomplete_multipart",
                OK if any("AbortIncompleteMultipartUpload" in r for r in rules) else BREACH,
                "lifecycle rule present" if any("AbortIncompleteMultipartUpload" in r for r in rules)
                else "no lifecycle rule aborts incomplete multipart uploads: failed uploads keep costing"),
    ]
    if versioned:
        expires = any("NoncurrentVersionExpiration" in r for r in rules)
        findings.append(Finding(
            "noncurrent_version_expiration", OK if expires else BREACH,
            "lifecycle rule present" if expires
            else "no lifecycle rule expires noncurrent versions: retention never frees space",
        ))
    lock = settings.get("object_lock")
    findings.append(Finding("object_lock", OK, "enabled" if lock == "Enabled" else "off (optional: immutable vaults)"))
    if "signing_key_id" in settings:  # a warning, not a failure: a new install must still work
        key_id = settings["signing_key_id"]
        if not key_id:
            status, detail = WARNING, ("off: whoever can write the bucket can make a forged backup look verified "
                                       "(set the gravitypm_signing_key connection)")
        elif settings.get("signing_placeholder"):
            status, detail = WARNING, (f"signed with the example key of deploy/airflow.env.example (key {key_id}), "
                                       "which anyone can read: replace it with `openssl rand -hex 32`")
        else:
            status, detail = OK, f"manifests and verification records signed (key {key_id})"
        findings.append(Finding("signing", status, detail))
    if "client_encryption" in settings:  # a warning, not a failure: a new install must still work
        enc = settings["client_encryption"]
        findings.append(
            Finding("client_encryption", OK, f"age, {enc['recipients']} recipients, kinds: {', '.join(enc['kinds'])}")
            if enc["recipients"] else
            Finding("client_encryption", WARNING, "backups are not client-side encrypted: whoever can read the bucket "
                                                  "reads them (set config key encryption_recipients)"))
    rejected = settings.get("rejected_count") or 0
    if rejected:
        findings.append(Finding("unsigned_objects", WARNING,
                                f"{rejected} manifest(s) or record(s) in the vault are unsigned or badly signed and "
                                "were left out: see status.json `signing.rejected`"))
    return CheckResult("vault_hygiene", tuple(findings))
