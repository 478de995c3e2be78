"""The host agents: Airflow Edge workers serving queue `gravitypm_host`, as the API server sees them.

Read from the edge provider's `edge_worker` table in-process (the console plugin runs in the API
server, which has DB access). None when the deployment has no Edge executor (no such table).
"""

from __future__ import annotations

from gravitypm_ops.names import HOST_QUEUE

# EdgeWorkerState values of a worker that takes jobs now (the scheduler marks a silent one "unknown").
ONLINE_STATES = ("starting", "idle", "running")


def read_host_agents() -> list[dict] | None:
    """[{"worker", "state", "online", "last_heartbeat"}] of the Edge workers serving the host queue."""
    from airflow.providers.edge3.models.edge_worker import EdgeWorkerModel
    from airflow.utils.session import create_session
    from sqlalchemy import inspect

    with create_session() as session:
        if not inspect(session.get_bind()).has_table(EdgeWorkerModel.__tablename__):
            return None
        workers = session.query(EdgeWorkerModel).order_by(EdgeWorkerModel.worker_name).all()
        return [
            {"worker": w.worker_name, "state": str(getattr(w.state, "value", w.state)),
             "online": str(getattr(w.state, "value", w.state)) in ONLINE_STATES,
             "last_heartbeat": w.last_update.isoformat() if w.last_update else None}
            for w in workers if HOST_QUEUE in (w.queues or [])
        ]
