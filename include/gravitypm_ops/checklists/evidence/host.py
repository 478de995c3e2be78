"""Evidence from the host probes: disk space and service health."""

from __future__ import annotations

import logging
from datetime import datetime

from gravitypm_ops.checklists.evidence.base import (
    FAILED,
    PASSED,
    WARNING,
    Evidence,
    combine,
)

log = logging.getLogger(__name__)


def _from_check(result) -> Evidence:
    outcome = {"ok": PASSED, "warning": WARNING, "breach": FAILED}
    parts = [(outcome[f.status], f"{f.subject}: {f.detail}") for f in result.findings]
    return combine(parts, result.to_dict())


def disk_space(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.host.checks import check_disk

    return _from_check(check_disk(cfg.disk_paths, cfg.disk_min_free_percent))


def service_health(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.host.checks import check_health

    return _from_check(check_health(cfg.health_urls))
