"""Database plumbing shared by both services: engines, a thread pool, migrations.

SQLite is the embedded default (WAL, synchronous=FULL, so an acknowledged write survives a
crash); PostgreSQL is chosen by URL. The sqlite3 driver's own transaction handling is turned
off and transactions are begun explicitly, so that a write transaction can take SQLite's write
lock up front (``BEGIN IMMEDIATE``) instead of failing half-way when two writers meet.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import ConnectionPoolEntry

T = TypeVar("T")

# Execution option read by the SQLite "begin" hook: "IMMEDIATE" for write transactions.
SQLITE_BEGIN = "relman_sqlite_begin"


def normalize_url(url: str) -> str:
    """Accept the URLs people type and pick the drivers relman ships with.

    >>> normalize_url("postgresql://postgres@127.0.0.1:5432/test")
    'postgresql+psycopg://postgres@127.0.0.1:5432/test'
    >>> normalize_url("postgres://u@h/db")
    'postgresql+psycopg://u@h/db'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str, *, pool_size: int = 8) -> Engine:
    """An engine for ``url`` with relman's durability settings."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def writer(engine: Engine) -> Engine:
    """The same engine, but transactions take SQLite's write lock when they begin.

    Other databases ignore the option; they rely on row locks (``SELECT ... FOR UPDATE``).
    """
    return engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class DbExecutor:
    """Runs blocking database work in a bounded thread pool, off the event loop."""

    def __init__(self, workers: int = 8, name: str = "db") -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._pool, call)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def upgrade(engine: Engine, script_location: str, version_table: str) -> None:
    """Apply every Alembic migration in ``script_location`` (a ``package:dir`` spec).

    On PostgreSQL an advisory lock keeps replicas that start together from migrating twice.
    The migrations' ``env.py`` must use ``config.attributes["connection"]`` (see
    :func:`run_migrations_online`).
    """
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.attributes["version_table"] = version_table
    with engine.begin() as conn:
        if is_postgres(engine):
            lock_key = zlib.crc32(version_table.encode())
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({lock_key})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def run_migrations_online(target_metadata: Any) -> None:
    """The body of each service's Alembic ``env.py``."""
    from alembic import context

    conn = context.config.attributes.get("connection")
    if conn is None:
        raise RuntimeError("migrations run through relman_common.db.upgrade()")
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        version_table=context.config.attributes["version_table"],
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
