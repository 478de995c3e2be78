"""The host agents: Airflow Edge workers serving queue `gravitypm_host`, as the API server sees them.

Read in-process (the console plugin runs in the API server, which has DB access) with the reader the
host agent watch and the morning checklist use (airflow/host_agents.py). None when the deployment has no
Edge executor (no `edge_worker` table).
"""

from __future__ import annotations

from gravitypm_ops.airflow.host_agents import read_agents


def read_host_agents() -> list[dict] | None:
    """[{"worker", "state", "online", "last_heartbeat", "queues"}] of the Edge workers serving the host queue."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return read_agents(session)
