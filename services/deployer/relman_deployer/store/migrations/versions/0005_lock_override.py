"""deployments record the app lock they were forced past (SPEC 9)

Revision ID: d0005
Revises: d0003_diagnostics
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0005"
down_revision: str | None = "d0003_diagnostics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("lock_override", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("lock_override")
