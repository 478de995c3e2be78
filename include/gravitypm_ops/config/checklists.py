"""The `checklists` config key: thresholds and endpoints of the evidence collectors."""

from __future__ import annotations

import re
from typing import Any

from gravitypm_ops.overrides import apply_overrides, list_of, optional, percent, positive_number, whole_number

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


def _endpoint(value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.\-]+(:\d{1,5})?", value):
        raise ValueError(f"{value!r} is not 'host' or 'host:port'")
    if ":" in value and not 0 < int(value.rsplit(":", 1)[1]) < 65536:
        raise ValueError(f"{value!r}: port out of range")
    return value


def _argv(value) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a for a in value):
        raise ValueError('must be a command as a list of strings, e.g. ["apt", "list", "--upgradable"]')
    return list(value)


def _url_path(value) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f'{value!r} is not a URL path; URL paths start with "/", e.g. "/login"')
    return value


def _ca_file(value) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError("must be an absolute path to a PEM file (or empty)")
    return value


_SETTING_CHECKERS = {
    "tls_endpoints": list_of(_endpoint, "endpoints", example='["api.gravitypm.com", "gravitypm.com:443"]', into=list),
    "tls_ca_file": optional(_ca_file),
    "tls_warning_days": whole_number(1),
    "tls_timeout_seconds": positive_number,
    "failed_login_threshold": whole_number(1),
    "login_paths": list_of(_url_path, "URL paths", non_empty=True, example='["/login"]', into=list),
    "error_rate_warning_percent": percent,
    "error_rate_failure_percent": percent,
    "security_updates_command": _argv,
    "security_updates_timeout_seconds": positive_number,
    "human_response_hours": positive_number,
    "capacity_horizon_days": whole_number(1),
    "capacity_window_days": whole_number(1),
    "capacity_growth_warning_percent": positive_number,
    "compliance_window_days": whole_number(1),
}
assert set(_SETTING_CHECKERS) == set(DEFAULT_SETTINGS)


def parse_checklist_settings(value: Any) -> dict:
    """The `checklists` config key: an object of overrides of DEFAULT_SETTINGS (ValueError names the bad one)."""
    settings = apply_overrides(
        {} if value is None else value, _SETTING_CHECKERS, DEFAULT_SETTINGS, path="checklists", noun="setting"
    )
    warning, failure = settings["error_rate_warning_percent"], settings["error_rate_failure_percent"]
    if warning > failure:
        raise ValueError(
            f"checklists.error_rate_warning_percent ({warning:g}) must not exceed "
            f"checklists.error_rate_failure_percent ({failure:g})"
        )
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
