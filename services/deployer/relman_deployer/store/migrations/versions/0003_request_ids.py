"""Promote, Rollback and Cancel by client request id (x-relman-request-id, SPEC 10)

Revision ID: d0003
Revises: d0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op
from relman_common.request_results import create_results_table

revision: str = "d0003"
down_revision: str | None = "d0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "deployer_request_results"


def upgrade() -> None:
    create_results_table(TABLE)


def downgrade() -> None:
    op.drop_table(TABLE)
