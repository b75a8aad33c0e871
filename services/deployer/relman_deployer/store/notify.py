"""PostgreSQL notifications of written events: each transaction that writes a deployment's
events (or its end) also sends ``NOTIFY relman_deployment_events`` with the deployment ids,
which PostgreSQL delivers to every listening Deployer when (and only if) it commits."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection

CHANNEL = "relman_deployment_events"
# A notification's payload is at most 8000 bytes: ids (11 characters) joined by commas.
IDS_PER_NOTIFICATION = 500
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


def notify_written(conn: Connection, deployment_ids: Iterable[str]) -> None:
    """In ``conn``'s transaction on PostgreSQL: tell the listeners these deployments have new
    events (nothing on other databases)."""
    if conn.dialect.name != "postgresql":
        return
    ids = sorted(set(deployment_ids))
    for start in range(0, len(ids), IDS_PER_NOTIFICATION):
        payload = ",".join(ids[start : start + IDS_PER_NOTIFICATION])
        conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})
