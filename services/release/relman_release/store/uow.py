"""The unit of work: one transaction per use-case, over SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, TypeVar

from relman_common.clock import Clock, utcnow
from relman_common.db import DbExecutor, commit, make_engine, upgrade, writer
from relman_common.group_commit import GroupCommit
from relman_common.secretbox import SecretBox
from sqlalchemy import Connection, Engine

from relman_release.store.repository import SqlRepository

T = TypeVar("T")

MIGRATIONS = "relman_release.store:migrations"
VERSION_TABLE = "release_alembic_version"


class SqlUnitOfWork:
    """Reads run in plain transactions; writes take SQLite's write lock up front
    (``BEGIN IMMEDIATE``) and lock the app row on PostgreSQL (``SELECT ... FOR UPDATE``).
    Envs are sealed with ``box`` on the way in and opened on the way out.

    Each transaction is a pooled Core connection, with no ORM session to set up and tear
    down."""

    def __init__(
        self, engine: Engine, box: SecretBox, clock: Clock = utcnow, keep_releases: int = 0
    ) -> None:
        self.engine = engine
        self.box = box
        self._clock = clock
        self.writer = writer(engine)
        # RELMAN_KEEP_RELEASES: prune to this many after each new release (0: never).
        self.keep_releases = keep_releases

    @contextmanager
    def read(self) -> Iterator[SqlRepository]:
        with self.engine.connect() as conn, conn.begin():
            yield SqlRepository(conn, self.box)

    @contextmanager
    def write(self) -> Iterator[SqlRepository]:
        """A write transaction, committed when the block ends (a connection lost during the
        commit is CommitUncertain)."""
        with self.writer.connect() as conn, conn.begin() as tx:
            yield SqlRepository(conn, self.box)
            commit(tx)

    def now(self) -> datetime:
        return self._clock()


class GroupedWrites:
    """Write use-cases through group commit (:mod:`relman_common.group_commit`): those that
    queue up while one batch commits run next, each in a savepoint of one shared transaction,
    and each caller is answered once it is committed. For SQLite, whose one write lock and
    fsync per commit otherwise serialize every write."""

    def __init__(self, uow: SqlUnitOfWork, executor: DbExecutor) -> None:
        self._uow = uow
        self._group = GroupCommit(writer(uow.engine), executor, grouped=True)

    async def run(self, use_case: Callable[..., T], *args: Any) -> T:
        uow = self._uow
        return await self._group.run(lambda conn: use_case(SharedWrite(uow, conn), *args))

    def close(self) -> None:
        self._group.close()


class SharedWrite:
    """The unit of work of one write inside a transaction its caller began (and commits):
    ``write()`` is the transaction (or savepoint) open on ``conn``; ``read()`` and ``now()``
    are those of ``uow``."""

    def __init__(self, uow: SqlUnitOfWork, conn: Connection) -> None:
        self._uow = uow
        self._conn = conn
        self.keep_releases = uow.keep_releases

    def read(self) -> AbstractContextManager[SqlRepository]:
        return self._uow.read()

    @contextmanager
    def write(self) -> Iterator[SqlRepository]:
        yield SqlRepository(self._conn, self._uow.box)

    def now(self) -> datetime:
        return self._uow.now()


def open_store(
    url: str, box: SecretBox, clock: Clock = utcnow, pool_size: int = 8, keep_releases: int = 0
) -> SqlUnitOfWork:
    """An engine for ``url`` with every migration applied, wrapped in a unit of work that
    seals envs with ``box`` (and prunes to ``keep_releases`` after each new release, if set)."""
    engine = make_engine(url, pool_size=pool_size)
    upgrade(engine, MIGRATIONS, VERSION_TABLE)
    return SqlUnitOfWork(engine, box, clock, keep_releases)
