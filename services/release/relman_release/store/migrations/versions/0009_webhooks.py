"""webhooks: subscriptions, the event outbox, deliveries and their attempts (SPEC 9)

Events are written to ``webhook_events`` in the transaction of the change they report, with
one ``webhook_deliveries`` row per subscribed webhook; the delivery worker claims a delivery
(``claimed_by``/``claimed_until``), records each attempt in ``webhook_attempts`` and moves it
to delivered, or schedules the next try.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # How many webhooks the app has: a change of an app without one writes no event and
    # reads no webhook (the hot paths stay one SELECT, one INSERT, one UPDATE).
    with op.batch_alter_table("apps") as batch:
        batch.add_column(sa.Column("webhooks", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(11), primary_key=True),
        sa.Column("app_id", Seq, sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
    )
    op.create_index("ix_webhooks_app", "webhooks", ["app_id"])
    op.create_table(
        "webhook_events",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(11), nullable=False, unique=True),
        sa.Column("app", sa.String(30), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column(
            "webhook_id",
            sa.String(11),
            sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_seq", Seq, sa.ForeignKey("webhook_events.seq"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        sa.Column("delivered", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_deliveries_state", "webhook_deliveries", ["state", "webhook_id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_seq",
            Seq,
            sa.ForeignKey("webhook_deliveries.seq", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_seq"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("webhooks")
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("webhooks")
