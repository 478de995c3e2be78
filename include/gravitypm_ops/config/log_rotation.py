"""The `log_rotation` config key: logrotate directives with the runbook's defaults, checked one by one."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from gravitypm_ops.overrides import Checker, apply_overrides, boolean, whole_number

log = logging.getLogger(__name__)

# The runbook's logrotate block.
DEFAULT_SETTINGS: dict[str, Any] = {
    "pattern": "*.log",
    "frequency": "daily",
    "rotate": 30,
    "compress": True,
    "compress_level": 6,
    "missingok": True,
    "notifempty": True,
    "create": {"mode": "0644", "owner": "www-data", "group": "www-data"},
    "copytruncate": False,
    "postrotate": "restart_logging",
}
FREQUENCIES = ("daily", "weekly", "monthly", "yearly")


def _pattern(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "/" in value or value in (".", ".."):
        raise ValueError('must be a file name glob inside logs_dir, e.g. "*.log"')
    return value


def _frequency(value: Any) -> str:
    if value not in FREQUENCIES:
        raise ValueError(f"must be one of {', '.join(FREQUENCIES)}")
    return value


def _mode(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{3}", value):
        raise ValueError('mode must be an octal string like "0644"')
    return value.zfill(4)


def _create(value: Any) -> dict | bool:
    if value is False:
        return False  # nocreate
    if not isinstance(value, Mapping):
        raise ValueError('must be false (nocreate) or {"mode": "0644", "owner": "www-data", "group": "www-data"}')
    unknown = sorted(set(value) - {"mode", "owner", "group"})
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; expected mode, owner, group")
    out = {"mode": None, "owner": None, "group": None}
    if value.get("mode") is not None:
        out["mode"] = _mode(value["mode"])
    for name in ("owner", "group"):
        if value.get(name) is not None:
            if not isinstance(value[name], (str, int)) or isinstance(value[name], bool) or value[name] == "":
                raise ValueError(f"{name} must be a user/group name or a numeric id")
            out[name] = value[name]
    return out


def _postrotate(value: Any) -> str | None:
    from gravitypm_ops.host.service_control import ACTIONS

    if value is None:
        return None
    if value not in ACTIONS:
        raise ValueError(f"must be null or a service action: {', '.join(ACTIONS)}")
    return value


_SETTING_CHECKERS: dict[str, Checker] = {
    "pattern": _pattern,
    "frequency": _frequency,
    "rotate": whole_number(-1, 1000),
    "compress": boolean,
    "compress_level": whole_number(1, 9),
    "missingok": boolean,
    "notifempty": boolean,
    "create": _create,
    "copytruncate": boolean,
    "postrotate": _postrotate,
}
assert set(_SETTING_CHECKERS) == set(DEFAULT_SETTINGS)


def parse_rotation_settings(value: Any) -> dict:
    """The runbook's block updated with `value` (the `log_rotation` config key); errors name the sub-key."""
    value = {} if value is None else value
    return apply_overrides(value, _SETTING_CHECKERS, DEFAULT_SETTINGS, path="log_rotation", noun="directive")
