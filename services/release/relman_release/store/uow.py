"""The unit of work: one transaction per use-case, over SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from relman_common.clock import Clock, utcnow
from relman_common.db import make_engine, upgrade, writer
from relman_common.secretbox import SecretBox
from sqlalchemy import Engine

from relman_release.store.repository import SqlRepository

MIGRATIONS = "relman_release.store:migrations"
VERSION_TABLE = "release_alembic_version"


class SqlUnitOfWork:
    """Reads run in plain transactions; writes take SQLite's write lock up front
    (``BEGIN IMMEDIATE``) and lock the app row on PostgreSQL (``SELECT ... FOR UPDATE``).
    Envs are sealed with ``box`` on the way in and opened on the way out.

    Each transaction is a pooled Core connection, with no ORM session to set up and tear
    down."""

    def __init__(self, engine: Engine, box: SecretBox, clock: Clock = utcnow) -> None:
        self.engine = engine
        self._box = box
        self._clock = clock
        self._writer = writer(engine)

    @contextmanager
    def read(self) -> Iterator[SqlRepository]:
        with self.engine.connect() as conn, conn.begin():
            yield SqlRepository(conn, self._box)

    @contextmanager
    def write(self) -> Iterator[SqlRepository]:
        with self._writer.connect() as conn, conn.begin():
            yield SqlRepository(conn, self._box)

    def now(self) -> datetime:
        return self._clock()


def open_store(
    url: str, box: SecretBox, clock: Clock = utcnow, pool_size: int = 8
) -> SqlUnitOfWork:
    """An engine for ``url`` with every migration applied, wrapped in a unit of work that
    seals envs with ``box``."""
    engine = make_engine(url, pool_size=pool_size)
    upgrade(engine, MIGRATIONS, VERSION_TABLE)
    return SqlUnitOfWork(engine, box, clock)
