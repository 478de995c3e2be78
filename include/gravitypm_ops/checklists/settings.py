"""The `checklists` config key: thresholds and endpoints of the evidence collectors."""

from __future__ import annotations

import re
from typing import Any

DEFAULT_SETTINGS: dict[str, Any] = {
    # "host" or "host:port"; empty: the hosts of the https health_urls, port 443.
    "tls_endpoints": [],
    # A PEM bundle trusted in addition to the system CAs (a private CA); empty: system CAs only.
    "tls_ca_file": "",
    "tls_warning_days": 30,  # runbook: certificate expiration (< 30 days) is a Critical alert
    "tls_timeout_seconds": 10.0,
    # Failed logins (401/403 on a login path) from one client within the window that make a spike.
    "failed_login_threshold": 20,
    "login_paths": ["/login", "/api/login", "/auth/login", "/api/auth/login"],
    # Runbook: error rate < 1 % (target); > 5 % is a Warning alert.
    "error_rate_warning_percent": 1.0,
    "error_rate_failure_percent": 5.0,
    "security_updates_command": ["apt", "list", "--upgradable"],
    "security_updates_timeout_seconds": 300.0,
    # How long a human item waits for an answer before it is recorded "missed" (fractions allowed).
    "human_response_hours": 24.0,
    # Capacity: warn when free disk is projected below disk_min_free_percent within this many days,
    # or a backup kind grew more than capacity_growth_warning_percent over the trend window.
    "capacity_horizon_days": 90,
    "capacity_window_days": 90,
    "capacity_growth_warning_percent": 50.0,
    # Compliance audit: the window searched for periods without a run and for missed items.
    "compliance_window_days": 92,
}


def _number(value, *, positive=True, integer=False):
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ValueError("must be a " + ("whole number" if integer else "number"))
    if positive and value <= 0:
        raise ValueError("must be > 0")
    return value if integer else float(value)


def _endpoint(value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.\-]+(:\d{1,5})?", value):
        raise ValueError(f"{value!r} is not 'host' or 'host:port'")
    if ":" in value and not 0 < int(value.rsplit(":", 1)[1]) < 65536:
        raise ValueError(f"{value!r}: port out of range")
    return value


def _list_of(value, check, example: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"must be a list, e.g. {example}")
    return [check(v) for v in value]


def _argv(value) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a for a in value):
        raise ValueError('must be a command as a list of strings, e.g. ["apt", "list", "--upgradable"]')
    return list(value)


def _paths(value) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p.startswith("/") for p in value):
        raise ValueError('must be a non-empty list of URL paths, e.g. ["/login"]')
    return list(value)


def _ca_file(value) -> str:
    if value in ("", None):
        return ""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError("must be an absolute path to a PEM file (or empty)")
    return value


def _percent(value) -> float:
    value = _number(value)
    if value >= 100:
        raise ValueError("must be a percentage below 100")
    return value


_SETTING_CHECKERS = {
    "tls_endpoints": lambda v: _list_of(v, _endpoint, '["api.gravitypm.com", "gravitypm.com:443"]'),
    "tls_ca_file": _ca_file,
    "tls_warning_days": lambda v: _number(v, integer=True),
    "tls_timeout_seconds": _number,
    "failed_login_threshold": lambda v: _number(v, integer=True),
    "login_paths": _paths,
    "error_rate_warning_percent": _percent,
    "error_rate_failure_percent": _percent,
    "security_updates_command": _argv,
    "security_updates_timeout_seconds": _number,
    "human_response_hours": _number,
    "capacity_horizon_days": lambda v: _number(v, integer=True),
    "capacity_window_days": lambda v: _number(v, integer=True),
    "capacity_growth_warning_percent": _number,
    "compliance_window_days": lambda v: _number(v, integer=True),
}
assert set(_SETTING_CHECKERS) == set(DEFAULT_SETTINGS)


def parse_checklist_settings(value: Any) -> dict:
    """The `checklists` config key: an object of overrides of DEFAULT_SETTINGS (ValueError names the bad one)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError('must be an object, e.g. {"tls_warning_days": 30}')
    unknown = sorted(set(value) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(DEFAULT_SETTINGS)}")
    settings = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_SETTINGS.items()}
    for key, raw in value.items():
        try:
            settings[key] = _SETTING_CHECKERS[key](raw)
        except (ValueError, TypeError) as err:
            raise ValueError(f"setting {key!r} {err}") from None
    if settings["error_rate_warning_percent"] > settings["error_rate_failure_percent"]:
        raise ValueError("setting 'error_rate_warning_percent' must not exceed 'error_rate_failure_percent'")
    return settings


def settings_of(cfg) -> dict:
    """The effective checklist settings of an OpsConfig (defaults when the key was not given)."""
    return cfg.checklists if cfg.checklists else parse_checklist_settings({})


def tls_endpoints(cfg) -> list[tuple[str, int]]:
    """(host, port) to check: the configured endpoints, else the hosts of the https health_urls."""
    from urllib.parse import urlsplit

    configured = settings_of(cfg)["tls_endpoints"]
    if configured:
        return [(e.rsplit(":", 1)[0], int(e.rsplit(":", 1)[1])) if ":" in e else (e, 443) for e in configured]
    found = []
    for url in cfg.health_urls.values():
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname and (parts.hostname, parts.port or 443) not in found:
            found.append((parts.hostname, parts.port or 443))
    return found
