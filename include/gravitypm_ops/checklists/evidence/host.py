"""Evidence from the host probes (host/checks.py): service health (and the host agent), disk space, memory."""

from __future__ import annotations

import logging
from datetime import datetime

from gravitypm_ops.checklists.evidence.base import FAILED, PASSED, Evidence, from_check

log = logging.getLogger(__name__)


def disk_space(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.host.checks import check_disk

    return from_check(check_disk(cfg.disk_paths, cfg.disk_min_free_percent))


def service_health(cfg, options: dict, now: datetime) -> Evidence:
    """The health URLs; with option `host_agent`, also whether a host agent is online (split deployments)."""
    from gravitypm_ops.host.checks import check_health

    return from_check(check_health(cfg.health_urls), [host_agent_finding()] if options.get("host_agent") else [])


def host_agent_finding(read_agents=None) -> dict:
    """Is a host agent (Edge worker serving gravitypm_host) online? Failed when none is; "not used" (passed)
    on a single box. `read_agents` defaults to the metadata DB, read like the scheduler does."""
    from gravitypm_ops.airflow import host_agents
    from gravitypm_ops.redact import scrub

    if not host_agents.host_executor():
        return {"subject": host_agents.SUBJECT, "outcome": PASSED,
                "detail": "not used (single box: host tasks run on the control plane)"}
    try:
        agents = (read_agents or host_agents.probe_agents)()
    except Exception as err:  # noqa: BLE001 - unknown is not online: say why
        return {"subject": host_agents.SUBJECT, "outcome": FAILED,
                "detail": scrub(f"state unknown: {type(err).__name__}: {err}")[:400]}
    online, detail = host_agents.agent_status(agents)
    return {"subject": host_agents.SUBJECT, "outcome": PASSED if online else FAILED, "detail": detail}


def memory(cfg, options: dict, now: datetime) -> Evidence:
    from gravitypm_ops.host.checks import check_memory

    return from_check(check_memory(cfg.memory_max_used_percent))
