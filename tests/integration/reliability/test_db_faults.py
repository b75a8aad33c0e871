"""Database faults on the real PostgreSQL (SPEC 10): connections cut with
``pg_terminate_backend`` (only those of the test's own database) while the services work.

A transaction whose connection died before it committed runs once more on a fresh connection;
one that loses its connection while committing is CommitUncertain; what is left reaches the
client as UNAVAILABLE with a clear message, never INTERNAL; and every change a client was told
was made is in the database.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from relman.v1 import release_pb2, release_pb2_grpc
from relman_common.auth import call_metadata
from relman_common.db import CommitUncertain, DbExecutor, commit, make_engine, retry_once
from relman_common.request_ids import REQUEST_ID_METADATA, new_request_id
from sqlalchemy import text
from support.deployer import manifest
from support.inproc import World
from support.reliability import figure

pytestmark = pytest.mark.xdist_group("reliability-db")


def terminate_others(url: str, conn: psycopg.Connection) -> int:
    """Cuts every connection to ``url``'s database but ``conn``'s own; how many."""
    name = url.rsplit("/", 1)[1]
    rows = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    ).fetchall()
    return sum(1 for (done,) in rows if done)


class Cutter:
    """Cuts the database's connections again and again in a thread until stopped."""

    def __init__(self, url: str, every: float = 0.2) -> None:
        self.url = url
        self.every = every
        self.cuts = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(self.every):
                self.cuts += terminate_others(self.url, conn)

    def __enter__(self) -> Cutter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def table(pg_url: str) -> Iterator[str]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id serial PRIMARY KEY, v text)")
    yield pg_url


def test_a_transaction_cut_before_commit_runs_once_more_on_a_fresh_connection(
    table: str,
) -> None:
    engine = make_engine(table, pool_size=2)
    attempts = []

    def write() -> int:
        with engine.connect() as conn, conn.begin() as tx:
            conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
            attempts.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            if len(attempts) == 1:  # the first attempt's connection dies mid-transaction
                with psycopg.connect(table, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (attempts[0],))
            conn.execute(text("INSERT INTO t (v) VALUES ('y')"))
            commit(tx)
            return len(attempts)

    try:
        assert retry_once(write) == 2
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT v FROM t ORDER BY id")).scalars().all()
    finally:
        engine.dispose()
    assert attempts[0] != attempts[1]  # a fresh connection
    assert rows == ["x", "y"]  # the cut attempt left nothing


def test_a_connection_lost_at_commit_is_commit_uncertain_and_not_run_again(table: str) -> None:
    engine = make_engine(table, pool_size=2)
    attempts = 0

    def write() -> None:
        nonlocal attempts
        attempts += 1
        with engine.connect() as conn, conn.begin() as tx:
            conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with psycopg.connect(table, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            commit(tx)

    try:
        with pytest.raises(CommitUncertain, match="may or may not have been made"):
            retry_once(write)
    finally:
        engine.dispose()
    assert attempts == 1


async def test_the_pool_picks_up_connections_cut_while_idle(table: str) -> None:
    """Every pooled connection cut while idle (a restarted database): the next transactions
    just work (pool_pre_ping)."""
    engine = make_engine(table, pool_size=4)
    executor = DbExecutor(workers=4)

    def count() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())

    try:
        await asyncio.gather(*(executor.run(count) for _ in range(8)))  # fill the pool
        with psycopg.connect(table, autocommit=True) as admin:
            assert terminate_others(table, admin) >= 1
        assert await asyncio.gather(*(executor.run(count) for _ in range(8))) == [0] * 8
    finally:
        executor.shutdown()
        engine.dispose()


@pytest.fixture
async def world(pg_url: str, tmp_path: Path) -> AsyncIterator[World]:
    w = await World(pg_url, tmp_path / "data", pod_delay=0.05).start()
    try:
        yield w
    finally:
        await w.stop()


async def test_env_changes_while_connections_are_cut_never_internal_and_none_lost(
    world: World, pg_url: str
) -> None:
    """1,000 ChangeEnv calls, 20 at a time, while every connection of the database is cut
    every 200 ms: each call is OK or UNAVAILABLE (never INTERNAL); every OK change is in the
    env; and a client that retries UNAVAILABLE with its request id gets every change made
    exactly once."""
    n, at_once = 1000, 20
    md = call_metadata(world.admin, "alice")
    codes: Counter[str] = Counter()
    retried = 0
    async with grpc.aio.insecure_channel(world.release_addr) as channel:
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        await stub.CreateApp(release_pb2.CreateAppRequest(name="myapp"), metadata=md)
        await stub.ImportBuild(
            release_pb2.ImportBuildRequest(
                app="myapp", manifest=manifest(1), images={"web": "registry.example/web:1"}
            ),
            metadata=md,
        )

        async def change(i: int) -> None:
            nonlocal retried
            request = release_pb2.ChangeEnvRequest(app="myapp", set={f"K{i:04d}": "v"})
            rid = [*md, (REQUEST_ID_METADATA, new_request_id())]
            for attempt in range(50):
                try:
                    await stub.ChangeEnv(request, metadata=rid, timeout=30)
                    codes["OK" if attempt == 0 else "OK after retrying"] += 1
                    return
                except grpc.aio.AioRpcError as err:
                    codes[err.code().name] += 1
                    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
                    assert "database" in (err.details() or ""), err.details()
                    retried += 1
                    await asyncio.sleep(0.05 * (attempt + 1))
            raise AssertionError(f"change {i} never made it")

        limit = asyncio.Semaphore(at_once)

        async def limited(i: int) -> None:
            async with limit:
                await change(i)

        with Cutter(pg_url) as cutter:
            await asyncio.gather(*(limited(i) for i in range(n)))
        env = await stub.GetEnv(release_pb2.GetEnvRequest(app="myapp"), metadata=md)
    assert "INTERNAL" not in codes and "UNKNOWN" not in codes
    assert sorted(env.env) == [f"K{i:04d}" for i in range(n)]
    assert world.count("releases") == n + 1  # each change once, and the import's
    figure(
        "db-faults-env-changes",
        f"{n} ChangeEnv ({at_once} at a time) while {cutter.cuts} connections were cut: "
        f"{dict(codes)}; 0 INTERNAL, {n}/{n} changes present once (postgres)",
        calls=n,
        cuts=cutter.cuts,
        codes=dict(codes),
    )
