"""Evidence from the host probes (host/checks.py): service health, disk space, memory."""

from __future__ import annotations

import logging
from datetime import datetime

from gravitypm_ops.checklists.evidence.base import Evidence, from_check

log = logging.getLogger(__name__)


def disk_space(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.host.checks import check_disk

    return from_check(check_disk(cfg.disk_paths, cfg.disk_min_free_percent))


def service_health(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.host.checks import check_health

    return from_check(check_health(cfg.health_urls))


def memory(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.host.checks import check_memory

    return from_check(check_memory(cfg.memory_max_used_percent))
