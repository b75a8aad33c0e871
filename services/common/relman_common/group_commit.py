"""Group commit: the write transactions that queue up while one commits share the next commit.

On SQLite every write transaction takes the database's one write lock and pays one fsync
(``synchronous=FULL``). 200 deployments starting at once used to mean 200 threads contending
for that lock (SQLite's busy handler sleeps between attempts) and 200 fsyncs, in the Deployer's
store and, for their reports, in the Release service. Here one task at a time writes: it takes
every write function queued so far and runs them, in order, in one transaction, each inside
its own savepoint, so a function that fails (an app already busy, a taken primary key) undoes
only its own writes and its caller gets its own error. Each caller's
result is handed back only after the shared transaction committed: nothing is reported written
before it is durable, and if the commit fails every caller of that batch gets the error.

On PostgreSQL each write keeps a transaction of its own (``grouped=False``): writes from several
instances lock rows (a Deployer's lease rows, a Release service's app rows), and one instance's
batch holding many row locks at once could deadlock with another's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from relman_common.db import DbExecutor, commit

T = TypeVar("T")

MAX_GROUP = 500

WriteFn = Callable[[Connection], Any]
# (succeeded, value or exception) for each function of a group, in order.
Outcomes = list[tuple[bool, Any]]


class GroupCommit:
    """Runs write functions for ``writer`` (an engine whose transactions take the write lock)."""

    def __init__(self, writer: Engine, executor: DbExecutor, *, grouped: bool) -> None:
        self._writer = writer
        self._executor = executor
        self._grouped = grouped
        self._pending: list[tuple[WriteFn, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        # Grouped, one batch is written at a time: on the one connection kept for it (taking
        # one from the pool and giving it back cost as much as the statements of a write).
        self._conn: Connection | None = None

    def close(self) -> None:
        """Give the kept connection back (before the engine is disposed); no write is running."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self._writer.connect()
        return conn

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a committed write transaction (shared with others queued meanwhile)."""
        if not self._grouped:
            return await self._executor.transaction(self._alone, fn)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="group-commit")
        # The write goes on if the caller is cancelled (as a write in a thread would).
        return await asyncio.shield(future)

    def _alone(self, fn: Callable[[Connection], T]) -> T:
        with self._writer.connect() as conn, conn.begin() as tx:
            result = fn(conn)
            commit(tx)
            return result

    async def _drain(self) -> None:
        while self._pending:
            group = self._pending[:MAX_GROUP]
            del self._pending[:MAX_GROUP]
            try:
                outcomes = await self._executor.run(self._commit, [fn for fn, _ in group])
            except BaseException as err:  # the executor failed, or this task was cancelled
                for _, future in group:
                    if not future.done():
                        future.set_exception(
                            err if isinstance(err, Exception) else RuntimeError("stopped")
                        )
                for _, future in self._pending:
                    if not future.done():
                        future.set_exception(RuntimeError("stopped"))
                self._pending.clear()
                raise
            for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _commit(self, fns: list[WriteFn]) -> Outcomes:
        """Runs in a database thread: ``fns`` in one transaction; each one's outcome."""
        conn = self._connection()
        if len(fns) == 1:
            try:
                with conn.begin():
                    return [(True, fns[0](conn))]
            except Exception as err:
                return [(False, err)]
        outcomes: Outcomes = []
        try:
            with conn.begin():
                for fn in fns:
                    try:
                        with conn.begin_nested():
                            outcomes.append((True, fn(conn)))
                    except Exception as err:
                        outcomes.append((False, err))
        except Exception as err:  # the commit failed: none of them was written
            return [(False, err) for _ in fns]
        return outcomes
