"""deployments, deployment_events, deploy_leases

Revision ID: d0001
Revises:
Create Date: 2025-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("app", sa.String(32), nullable=False),
        sa.Column("release_id", sa.String(16), nullable=False),
        sa.Column("previous_release_id", sa.String(16), nullable=False, server_default=""),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rollback_of", sa.String(16), nullable=False, server_default=""),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("timeout_seconds", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cancelled_by", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_deployments_app_started", "deployments", ["app", "started", "id"])
    op.create_index("ix_deployments_started", "deployments", ["started", "id"])
    op.create_index("ix_deployments_outcome", "deployments", ["outcome"])
    op.create_table(
        "deployment_events",
        sa.Column("deployment_id", sa.String(16), sa.ForeignKey("deployments.id"), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("deployment_id", "seq", name="pk_deployment_events"),
    )
    op.create_table(
        "deploy_leases",
        sa.Column("app", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("deployment_id", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deploy_leases")
    op.drop_table("deployment_events")
    op.drop_index("ix_deployments_outcome", "deployments")
    op.drop_index("ix_deployments_started", "deployments")
    op.drop_index("ix_deployments_app_started", "deployments")
    op.drop_table("deployments")
