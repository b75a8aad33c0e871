"""The Deployer's store: every method is one transaction (or, for writes on SQLite, one
savepoint of a transaction shared with the writes queued meanwhile), run off the event loop.
Storage errors become the project's errors here; nothing above the store sees SQLAlchemy."""

from __future__ import annotations

from relman_deployer.store.base import migrate
from relman_deployer.store.deployments import DeploymentQueries
from relman_deployer.store.diagnostics import DiagnosticsQueries
from relman_deployer.store.events import EventQueries
from relman_deployer.store.leases import LeaseQueries
from relman_deployer.store.rows import group_by_deployment


class DeploymentStore(DeploymentQueries, EventQueries, LeaseQueries, DiagnosticsQueries):
    """Async access to deployments, their events, the per-app leases and diagnostics."""


__all__ = ["DeploymentStore", "group_by_deployment", "migrate"]
