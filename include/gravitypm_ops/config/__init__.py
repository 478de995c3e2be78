"""The one config object: runbook defaults, overridden by the JSON Variable ``gravitypm_ops``.

The nested blocks have their own modules here (`log_rotation.py`, `checklists.py`; the
`service_commands` block is parsed by host/service_control.py, which owns its defaults).

Read it inside tasks only (``load_config()``), never at DAG-parse time. Unknown keys
and bad values fail loudly with the key's name, so a typo in the Variable cannot
silently fall back to a default.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gravitypm_ops.config.blocks import parse_alert_settings, parse_housekeeping_settings
from gravitypm_ops.config.checklists import parse_checklist_settings
from gravitypm_ops.config.log_rotation import parse_rotation_settings
from gravitypm_ops.host.service_control import parse_service_commands
from gravitypm_ops.names import BACKUP_KINDS, CONFIG_VARIABLE
from gravitypm_ops.overrides import Checker, apply_overrides, list_of, optional, percent, positive_number, whole_number
from gravitypm_ops.vault.encryption import DEFAULT_KINDS as DEFAULT_ENCRYPT_KINDS
from gravitypm_ops.vault.encryption import parse_kinds, parse_recipient
from gravitypm_ops.vault.retention import DEFAULT_RETENTION, RetentionPolicy

RUNBOOK_APP_ROOT = "/opt/gravitypm/production"


# Runbook "Health Check Endpoints".
RUNBOOK_HEALTH_URLS = {
    "application": "https://api.gravitypm.com/health",
    "database": "https://api.gravitypm.com/health/db",
    "cache": "https://api.gravitypm.com/health/redis",
    "load_balancer": "https://gravitypm.com/health",
}
# A backup older than this many hours is stale (the schedule plus slack).
RUNBOOK_FRESHNESS_HOURS = {"db": 7.0, "fs": 26.0, "config": 26.0, "logs": 26.0}


class ConfigError(ValueError):
    """The gravitypm_ops Variable holds something we refuse to guess about."""


@dataclass(frozen=True)
class OpsConfig:
    vault_bucket: str = "gravitypm-backups"
    vault_prefix: str = "production"
    app_root: str = RUNBOOK_APP_ROOT
    # Empty means "<app_root>/logs"; read the resolved value from `logs_path`.
    logs_dir: str = ""
    # Relative entries are resolved against app_root (see `config_files`).
    config_paths: tuple[str, ...] = ("docker-compose.production.yml", ".env", "nginx", "config")
    mongo_databases: tuple[str, ...] = ("gravitypm_production",)
    health_urls: Mapping[str, str] = field(default_factory=lambda: dict(RUNBOOK_HEALTH_URLS))
    # Runbook "Evening Checklist": disk > 20 % free; "System Metrics": memory < 85 %.
    disk_min_free_percent: float = 20.0
    memory_max_used_percent: float = 85.0
    freshness_hours: Mapping[str, float] = field(default_factory=lambda: dict(RUNBOOK_FRESHNESS_HOURS))
    # Per kind; a kind given in the Variable replaces that kind's default policy whole.
    retention: Mapping[str, RetentionPolicy] = field(default_factory=lambda: dict(DEFAULT_RETENTION))
    # Encryption at rest: SSE-S3 unless a KMS key id is given (then SSE-KMS).
    kms_key_id: str = ""
    # Client-side encryption (vault/encryption.py): artifacts of these kinds are age-encrypted to the
    # recipients (age1… public keys); off while there are none.
    encryption_recipients: tuple[str, ...] = ()
    encrypt_kinds: tuple[str, ...] = DEFAULT_ENCRYPT_KINDS
    # > 0: every object written gets COMPLIANCE Object Lock retention for this many days.
    object_lock_days: int = 0
    # fs and config archives: {"algorithm": "zstd" | "gzip", "level": n}.
    compression: Mapping[str, Any] = field(default_factory=lambda: {"algorithm": "zstd", "level": 3})
    # Globs (archive paths, relative to app_root) the fs backup leaves out; logs_dir is always
    # left out (log rotation ships logs), as are editor/temp droppings.
    fs_excludes: tuple[str, ...] = ("**/*.tmp", "**/*.swp", "**/.cache/**")
    # Trial restores and drills write only into databases named with this prefix.
    scratch_database_prefix: str = "gravitypm_scratch_"
    # Service control (stop/start the app, restart logging): {action: command}; see host/service_control.py.
    # Empty means the runbook's docker compose lines; an action given replaces that action only.
    service_commands: Mapping[str, Any] = field(default_factory=dict)
    # Filesystem restores may only write below these; empty means (app_root,).
    restore_allowed_roots: tuple[str, ...] = ()
    # The runbook's logrotate block, as overrides of log_rotation.py's defaults.
    log_rotation: Mapping[str, Any] = field(default_factory=dict)
    # Checklist settings (TLS endpoints, thresholds, commands), overrides of config/checklists.py's defaults.
    checklists: Mapping[str, Any] = field(default_factory=dict)
    # Off-site copies: off while offsite_bucket is empty; offsite_prefix empty means vault_prefix.
    offsite_bucket: str = ""
    offsite_prefix: str = ""
    # Per kind, like `retention`; a kind not given keeps the primary vault's policy.
    offsite_retention: Mapping[str, RetentionPolicy] = field(default_factory=dict)
    # {"repeat_hours": 4}: reminders of a firing alert (config/blocks.py).
    alerts: Mapping[str, Any] = field(default_factory=lambda: parse_alert_settings({}))
    # {"keep_days": 90, "archive": false, "log_keep_days": 30}: Airflow's own clean-up (config/blocks.py).
    housekeeping: Mapping[str, Any] = field(default_factory=lambda: parse_housekeeping_settings({}))
    # Split deployments: a host task waiting this long with no host agent online is failed, with a
    # Critical alert (gravitypm_host_agent_watch); before Airflow's own ~30 min requeue-and-fail.
    host_agent_timeout_minutes: int = 15

    @property
    def logs_path(self) -> str:
        return self.logs_dir or os.path.join(self.app_root, "logs")

    @property
    def config_files(self) -> tuple[str, ...]:
        return tuple(os.path.join(self.app_root, p) for p in self.config_paths)

    @property
    def restore_roots(self) -> tuple[str, ...]:
        return self.restore_allowed_roots or (self.app_root,)

    @property
    def offsite_enabled(self) -> bool:
        return bool(self.offsite_bucket)

    @property
    def offsite_key_prefix(self) -> str:
        return self.offsite_prefix or self.vault_prefix

    def offsite_policy(self, kind: str) -> RetentionPolicy:
        return self.offsite_retention.get(kind) or self.retention[kind]

    @property
    def disk_paths(self) -> tuple[str, ...]:
        """Paths whose filesystems must keep enough free space."""
        return tuple(dict.fromkeys((self.app_root, self.logs_path)))


# --- value checkers: each returns the normalised value or raises ValueError -------------
# Shared ones (numbers, lists, optional) live in overrides.py; these are config.py's own.


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _absolute_path(value: Any) -> str:
    value = _text(value)
    if not os.path.isabs(value):
        raise ValueError("must be an absolute path")
    return os.path.normpath(value)


def _config_path(value: Any) -> str:
    value = _text(value)
    if ".." in value.split("/"):
        raise ValueError(f"{value!r}: '..' is not allowed")
    return value


def _bucket(value: Any) -> str:
    value = _text(value)
    if not (3 <= len(value) <= 63) or value != value.lower() or " " in value or "/" in value:
        raise ValueError("must be a valid S3 bucket name (3-63 lowercase characters, no '/')")
    return value


def _prefix(value: Any) -> str:
    value = _text(value).strip("/")
    if not value or ".." in value.split("/"):
        raise ValueError("must be a key prefix like 'production' (no '..')")
    return value


def _urls(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise ValueError('must be an object of name -> URL, e.g. {"application": "https://host/health"}')
    for name, url in value.items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"{name!r}: {url!r} is not an http(s) URL")
    return dict(value)


def _per_kind(key: str, check: Checker, defaults: Mapping[str, Any], hint: str) -> Checker:
    """A {kind: value} object under config key `key`; kinds not given keep their defaults."""
    checkers = dict.fromkeys(BACKUP_KINDS, check)
    return lambda value: apply_overrides(value, checkers, defaults, path=key, noun="kind", hint=hint)


def _policy(value: Any) -> RetentionPolicy:
    if not isinstance(value, dict):
        raise ValueError('must be an object like {"daily": 7}')
    return RetentionPolicy.from_dict(value)


def _days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a whole number of days >= 0 (0 = off)")
    return value


def _compression(value: Any) -> dict:
    from gravitypm_ops.formats.tar.compression import Compression

    return Compression.from_dict(value).to_dict()


def _scratch_prefix(value: Any) -> str:
    value = _text(value)
    if not re.fullmatch(r"[A-Za-z0-9_]{3,30}", value):
        raise ValueError("must be 3-30 letters, digits or '_' (a MongoDB database name prefix)")
    return value


_CHECKERS: dict[str, Checker] = {
    "vault_bucket": _bucket,
    "vault_prefix": _prefix,
    "app_root": _absolute_path,
    "logs_dir": optional(_absolute_path),
    "config_paths": list_of(_config_path, "paths", non_empty=True),
    "mongo_databases": list_of(_text, "names", non_empty=True),
    "health_urls": _urls,
    "disk_min_free_percent": percent,
    "memory_max_used_percent": percent,
    "freshness_hours": _per_kind("freshness_hours", positive_number, RUNBOOK_FRESHNESS_HOURS, "hours"),
    "retention": _per_kind("retention", _policy, DEFAULT_RETENTION, 'policy, e.g. {"db": {"last": 4, "daily": 7}}'),
    "kms_key_id": optional(_text),
    "object_lock_days": _days,
    "encryption_recipients": list_of(parse_recipient, "age public keys", example='["age1…"]'),
    "encrypt_kinds": parse_kinds,
    "compression": _compression,
    "fs_excludes": list_of(_text, "glob patterns", example='["uploads/tmp/**"]'),
    "scratch_database_prefix": _scratch_prefix,
    "service_commands": parse_service_commands,
    "restore_allowed_roots": list_of(_absolute_path, "absolute paths"),
    "log_rotation": parse_rotation_settings,
    "checklists": parse_checklist_settings,
    "offsite_bucket": optional(_bucket),
    "offsite_prefix": optional(_prefix),
    "offsite_retention": _per_kind(
        "offsite_retention", _policy, {}, 'policy, e.g. {"db": {"daily": 7, "monthly": 24}}'
    ),
    "alerts": parse_alert_settings,
    "housekeeping": parse_housekeeping_settings,
    "host_agent_timeout_minutes": whole_number(1),
}
assert set(_CHECKERS) == {f.name for f in fields(OpsConfig)}, "every config key needs a checker"
# Sorted: the "known keys" list in the unknown-key error is read by eye.
_CHECKERS = dict(sorted(_CHECKERS.items()))


def parse_config(overrides: Mapping[str, Any] | None) -> OpsConfig:
    """Runbook defaults updated with `overrides` (the decoded Variable); None means defaults."""
    if overrides is None:
        return OpsConfig()
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"Variable {CONFIG_VARIABLE!r} must be a JSON object, got {type(overrides).__name__}")
    try:
        values = apply_overrides(overrides, _CHECKERS)  # no defaults: OpsConfig's fields are them
    except ValueError as err:
        raise ConfigError(f"Variable {CONFIG_VARIABLE!r}: {err}") from None
    return OpsConfig(**values)


def parse_config_json(text: str | None) -> OpsConfig:
    if text is None or not text.strip():
        return OpsConfig()
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"Variable {CONFIG_VARIABLE!r} is not valid JSON: {err}") from None
    return parse_config(decoded)


def load_config() -> OpsConfig:
    """Read the Variable (or AIRFLOW_VAR_GRAVITYPM_OPS). Call inside a task, never at parse time."""
    from airflow.sdk import Variable

    return parse_config_json(Variable.get(CONFIG_VARIABLE, default=None))
