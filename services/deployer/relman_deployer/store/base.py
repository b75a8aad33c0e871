"""What every part of the Deployer's store shares: the engine, reads off the event loop,
writes through group commit, and the queries more than one part runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from relman_common.db import DbExecutor, is_postgres, upgrade, writer
from relman_common.errors import DEPLOYMENT_NOT_FOUND, NotFound
from relman_common.group_commit import GroupCommit
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection, RowMapping

from relman_deployer.domain.model import Deployment
from relman_deployer.store import rows
from relman_deployer.store import statements as q
from relman_deployer.store.tables import deployments

T = TypeVar("T")

MIGRATIONS = "relman_deployer.store:migrations"
VERSION_TABLE = "deployer_alembic_version"
RUNNING = q.RUNNING


def migrate(engine: Engine) -> None:
    upgrade(engine, MIGRATIONS, VERSION_TABLE)


class StoreBase:
    """All SQL runs in ``executor``'s threads; writes on SQLite share commits (see
    :mod:`relman_common.group_commit`)."""

    def __init__(self, engine: Engine, executor: DbExecutor) -> None:
        self.engine = engine
        self._executor = executor
        self._writes = GroupCommit(writer(engine), executor, grouped=not is_postgres(engine))

    def close(self) -> None:
        """Give back the connection kept for grouped writes; call before disposing the engine."""
        self._writes.close()

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.engine.connect() as conn:
                return fn(conn)

        return await self._executor.transaction(run)

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction; on SQLite, one shared with the writes queued
        meanwhile."""
        return await self._writes.run(fn)


def lease_for_update(conn: Connection, app: str) -> RowMapping | None:
    return conn.execute(q.LEASE_FOR_UPDATE, {"p_app": app}).mappings().first()


def running_of_app(conn: Connection, app: str) -> Deployment | None:
    row = conn.execute(q.RUNNING_OF_APP, {"p_app": app}).mappings().first()
    return rows.deployment(row) if row is not None else None


def is_running(conn: Connection, deployment_id: str) -> bool:
    query = select(deployments.c.outcome).where(deployments.c.id == deployment_id)
    return conn.execute(query).scalar() == RUNNING


def get(conn: Connection, deployment_id: str) -> Deployment:
    first = conn.execute(q.GET, {"p_id": deployment_id}).mappings().first()
    if first is None:
        raise NotFound(
            f"deployment not found: {deployment_id}",
            reason=DEPLOYMENT_NOT_FOUND,
            field="deployment_id",
        )
    return rows.deployment(first)
