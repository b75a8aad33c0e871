"""builds from source: where a build came from, how it ended, who runs it, and its log

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("builds") as batch:
        batch.add_column(sa.Column("release_id", sa.String(11), nullable=False, server_default=""))
        batch.add_column(sa.Column("reason", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("source_sha256", sa.String(64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("manifest_path", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("no_cache", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("log_lines", Seq, nullable=False, server_default="0"))
        # The Release service instance that runs the build, and when it last said so.
        batch.add_column(sa.Column("runner", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_builds_status", "builds", ["status"])
    op.create_table(
        "build_logs",
        sa.Column(
            "build_id",
            sa.String(11),
            sa.ForeignKey("builds.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", Seq, primary_key=True, autoincrement=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("build_logs")
    op.drop_index("ix_builds_status", table_name="builds")
    with op.batch_alter_table("builds") as batch:
        for column in (
            "heartbeat",
            "runner",
            "log_lines",
            "no_cache",
            "manifest_path",
            "source_sha256",
            "reason",
            "release_id",
        ):
            batch.drop_column(column)
