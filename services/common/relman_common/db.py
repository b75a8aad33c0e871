"""Database plumbing shared by both services: engines, a thread pool, migrations, and what a
database fault becomes.

SQLite is the embedded default (WAL, synchronous=FULL, so an acknowledged write survives a
crash); PostgreSQL is chosen by URL. The sqlite3 driver's own transaction handling is turned
off and transactions are begun explicitly, so that a write transaction can take SQLite's write
lock up front (``BEGIN IMMEDIATE``) instead of failing half-way when two writers meet.

Faults (SPEC 10): a transaction that fails because its connection died (the server restarted,
``pg_terminate_backend``), the database could not be reached, or on a serialization failure or
deadlock, is run once more on a fresh connection (:meth:`DbExecutor.transaction`) when it had
not committed; a connection lost during COMMIT cannot tell whether it committed and is
:class:`CommitUncertain`. What is left becomes :class:`relman_common.errors.Unavailable` with a
clear message (:func:`domain_error`, used by the RPC layer), never INTERNAL. PostgreSQL
connections are pinged when taken from the pool (``pool_pre_ping``), so a restarted database is
picked up without restarting the services.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import Connection, RootTransaction
from sqlalchemy.pool import ConnectionPoolEntry

from relman_common import errors
from relman_common.vocabulary import clip

T = TypeVar("T")

log = logging.getLogger("relman.db")

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


class CommitUncertain(errors.Unavailable):
    """The connection was lost while the transaction committed: it may or may not have been
    made. Never retried here; a client's retry with the same request id finds out."""


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` is a database fault that a new attempt on a fresh connection may not
    meet: a lost or refused connection, a serialization failure or a deadlock (SQLAlchemy
    raises these as OperationalError / InterfaceError, or marks the connection invalidated),
    or no pooled connection free in time."""
    if isinstance(err, CommitUncertain):
        return False
    if isinstance(err, exc.DBAPIError):
        if err.connection_invalidated:
            return True
        if type(err.orig).__module__.startswith("sqlite3"):
            # SQLite's OperationalError also means "no such table" (a bug): only a busy
            # database is a fault here.
            text = str(err.orig).lower()
            return "locked" in text or "busy" in text
        return isinstance(err, exc.OperationalError | exc.InterfaceError)
    return isinstance(err, exc.TimeoutError)


def domain_error(err: BaseException) -> errors.RelmanError | None:
    """The project error a database fault is (Unavailable), or None for anything else (a
    bug, which stays INTERNAL)."""
    if isinstance(err, errors.RelmanError) or not is_transient(err):
        return None
    return errors.Unavailable(f"the database is unavailable ({_detail(err)}): retry later")


def _detail(err: BaseException) -> str:
    """The driver's words for a fault, on one line, clipped."""
    cause = getattr(err, "orig", None) or err
    return clip(" ".join(str(cause).split()), 100)


def commit(tx: RootTransaction) -> None:
    """Commit ``tx``; a fault during the commit is :class:`CommitUncertain`."""
    try:
        tx.commit()
    except Exception as err:
        if not is_transient(err):
            raise
        raise CommitUncertain(
            "the database connection was lost while committing: the change may or may not "
            "have been made (a retry with the same request id answers which)"
        ) from err


def retry_once(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, run once more if it failed on a transient database fault
    before committing (``fn`` must be whole transactions, none of which committed when it
    raises such a fault: each of the services' use-cases writes in one)."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:
        if not is_transient(err):
            raise
        log.warning("database fault (%s); running the transaction again", _detail(err))
    return fn(*args, **kwargs)


class DbExecutor:
    """Runs blocking database work in a bounded thread pool, off the event loop."""

    def __init__(self, workers: int = 8, name: str = "db") -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._pool, call)

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, database transactions that did not commit when they fail, run
        again once after a transient fault (:func:`retry_once`)."""
        return await self.run(retry_once, fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def upgrade(engine: Engine, script_location: str, version_table: str) -> None:
    """Apply every Alembic migration in ``script_location`` (a ``package:dir`` spec).

    On PostgreSQL an advisory lock keeps replicas that start together from migrating twice; on
    SQLite the migration takes the write lock up front (``BEGIN IMMEDIATE``), so it waits for
    another process's writer instead of failing when its read snapshot goes stale. The
    migrations' ``env.py`` must use ``config.attributes["connection"]`` (see
    :func:`run_migrations_online`).
    """
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.attributes["version_table"] = version_table
    with writer(engine).begin() as conn:
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
