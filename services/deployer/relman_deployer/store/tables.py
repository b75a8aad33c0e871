"""SQLAlchemy tables. Names are distinct from the Release service's: they may share a database."""

from __future__ import annotations

from relman_common.request_results import results_table
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

deployments = Table(
    "deployments",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("app", String(32), nullable=False),
    Column("release_id", String(16), nullable=False),
    Column("previous_release_id", String(16), nullable=False, server_default=""),
    Column("actor", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("rollback_of", String(16), nullable=False, server_default=""),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("ended", DateTime(timezone=True), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("phase", String(16), nullable=False),
    Column("timeout_seconds", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("cancelled_by", String(64), nullable=False, server_default=""),
    # The app lock it was forced past ("" when none; migration d0003).
    Column("lock_override", Text, nullable=False, server_default=""),
    Index("ix_deployments_app_started", "app", "started", "id"),
    Index("ix_deployments_started", "started", "id"),
    Index("ix_deployments_outcome", "outcome"),
)

deployment_events = Table(
    "deployment_events",
    metadata,
    Column("deployment_id", String(16), ForeignKey("deployments.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("message", Text, nullable=False),
    PrimaryKeyConstraint("deployment_id", "seq", name="pk_deployment_events"),
)

deploy_leases = Table(
    "deploy_leases",
    metadata,
    Column("app", String(32), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("deployment_id", String(16), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# The last recorded diagnostics of a deployment's rollout (JSON of
# relman_deployer.domain.diagnostics.Diagnostics), one row per deployment, overwritten.
deployment_diagnostics = Table(
    "deployment_diagnostics",
    metadata,
    Column("deployment_id", String(16), ForeignKey("deployments.id"), primary_key=True),
    Column("recorded", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
)

# Promote, Rollback and Cancel by client request id: the deployment each one started or
# cancelled (relman_common.request_ids).
request_results = results_table(metadata, "deployer_request_results")
