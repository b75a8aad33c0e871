"""the app's current deployment (whose reports count)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.add_column(
            sa.Column("current_deployment_id", sa.String(11), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("current_deployment_started", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("current_deployment_started")
        batch.drop_column("current_deployment_id")
