"""deployment phases of the lifecycle table (starting, pending, updating, rolling-back, ended)

Before, a running deployment's phase was only "rolling-out" or "rolling-back" and a resumed
one found out which status lines it had written by reading their text. Now the phase says it;
this migration works it out once for deployments that were running, and marks ended ones.

Revision ID: d0002
Revises: d0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "d0002"
down_revision: str | None = "d0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _written(message: str) -> str:
    return (
        "EXISTS (SELECT 1 FROM deployment_events e WHERE e.deployment_id = deployments.id "
        f"AND e.reason = 'StatusChange' AND e.message = '{message}')"
    )


def upgrade() -> None:
    op.execute("UPDATE deployments SET phase = 'ended' WHERE outcome <> 'running'")
    op.execute(
        "UPDATE deployments SET phase = CASE "
        f"WHEN {_written('Status: Pending => Updating')} THEN 'updating' "
        f"WHEN {_written('Status: Running => Pending')} THEN 'pending' "
        "ELSE 'starting' END "
        "WHERE outcome = 'running' AND phase = 'rolling-out'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE deployments SET phase = 'rolling-out' "
        "WHERE phase IN ('starting', 'pending', 'updating', 'ended')"
    )
