"""results of mutating calls by client request id (x-relman-request-id, SPEC 10)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op
from relman_common.request_results import create_results_table

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "release_request_results"


def upgrade() -> None:
    create_results_table(TABLE)


def downgrade() -> None:
    op.drop_table(TABLE)
