"""deployment_diagnostics: the last recorded per-service diagnostics of a deployment

Revision ID: d0003_diagnostics
Revises: d0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0003_diagnostics"
down_revision: str | None = "d0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployment_diagnostics",
        sa.Column(
            "deployment_id", sa.String(16), sa.ForeignKey("deployments.id"), primary_key=True
        ),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deployment_diagnostics")
