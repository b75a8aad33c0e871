"""release retention: pins, the rollback target, pruned ids, and files to delete (SPEC 9)

``pruned`` remembers the ids of pruned releases and builds, so that asking for one says it
was pruned; ``garbage`` lists the source archives and images a prune let go, written in the
prune's transaction and deleted once the files are (a crash in between leaves rows that the
next start sweeps, never a file of something kept).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.add_column(
            sa.Column(
                "previous_active_release_id", sa.String(11), nullable=False, server_default=""
            )
        )
    with op.batch_alter_table("releases") as batch:
        batch.add_column(
            sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "pruned",
        sa.Column("id", sa.String(11), primary_key=True),
        sa.Column("app_id", Seq, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
    )
    op.create_table(
        "garbage",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("garbage")
    op.drop_table("pruned")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("pinned")
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("previous_active_release_id")
