"""A deployment's diagnostics: the last recorded one per deployment, replaced in one
transaction each time (a row per deployment, so readers see one whole record or the one
before)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from relman_deployer.domain.diagnostics import Diagnostics, decode, encode
from relman_deployer.store.base import StoreBase
from relman_deployer.store.tables import deployment_diagnostics as table


def replace_diagnostics(conn: Connection, deployment_id: str, diagnostics: Diagnostics) -> None:
    """Make ``diagnostics`` the deployment's (in the caller's transaction)."""
    conn.execute(delete(table).where(table.c.deployment_id == deployment_id))
    conn.execute(
        insert(table).values(
            deployment_id=deployment_id, recorded=diagnostics.recorded, body=encode(diagnostics)
        )
    )


class DiagnosticsQueries(StoreBase):
    async def save_diagnostics(self, deployment_id: str, diagnostics: Diagnostics) -> None:
        await self._write(lambda conn: replace_diagnostics(conn, deployment_id, diagnostics))

    async def diagnostics(self, deployment_id: str) -> Diagnostics | None:
        def run(conn: Connection) -> str | None:
            query = select(table.c.body).where(table.c.deployment_id == deployment_id)
            found: str | None = conn.execute(query).scalar()
            return found

        body = await self._read(run)
        return decode(body) if body is not None else None
