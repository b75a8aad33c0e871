"""apps, builds and releases

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", Seq, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(30), nullable=False, unique=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("active_release_id", sa.String(11), nullable=False, server_default=""),
        sa.Column("latest_release_id", sa.String(11), nullable=False, server_default=""),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "builds",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(11), nullable=False, unique=True),
        sa.Column("app_id", Seq, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("images", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("git_sha", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_builds_app_seq", "builds", ["app_id", "seq"])
    op.create_table(
        "releases",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(11), nullable=False, unique=True),
        sa.Column("app_id", Seq, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("build_id", sa.String(11), nullable=False, server_default=""),
        sa.Column("env", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("last_deployment_id", sa.String(11), nullable=False, server_default=""),
        sa.Column("last_deployment_outcome", sa.String(16), nullable=False, server_default=""),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_releases_app_seq", "releases", ["app_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_releases_app_seq", table_name="releases")
    op.drop_table("releases")
    op.drop_index("ix_builds_app_seq", table_name="builds")
    op.drop_table("builds")
    op.drop_table("apps")
