"""Floors: what the machine and the libraries cost before relman does anything.

- echo: a bare grpc.aio server (:mod:`bench.echo_server`, its own process) driven by the same
  client code as the services: unary p50/p99 and calls/s; server-stream messages/s.
- durable insert: one row per transaction, SQLite in WAL with synchronous=FULL (what
  relman_common.db sets), and PostgreSQL with its default synchronous_commit=on.
- import: ``python -c "import grpc"`` plus the generated stubs, as a whole process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import psycopg
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc
from relman_common import tokens

from bench.clients import TOKENS, StreamResult, Timing, channel, consume, run_unary
from bench.procs import REPO, ServiceProcess, loopback_addr
from bench.stats import summarize_ms

ENV_VALUE = "postgres://user:secret@db.internal:5432/app?sslmode=require"
COUNTER_KEY = "BENCH_COUNTER"
IMPORT_FLOOR_CODE = (
    "import grpc\n"
    "from relman.v1 import release_pb2, release_pb2_grpc, deployer_pb2, deployer_pb2_grpc\n"
)


# --- unary operations shared with bench.release (same client code for floor and service) ---


def env_change_op(app_for: Callable[[int], str]) -> Callable[..., Any]:
    async def op(ch: grpc.aio.Channel, client: int, i: int) -> object:
        stub = release_pb2_grpc.ReleaseServiceStub(ch)
        # The same key each time, a new value: every call makes a release, the env stays small.
        request = release_pb2.ChangeEnvRequest(app=app_for(client), set={COUNTER_KEY: str(i)})
        response = await stub.ChangeEnv(request)
        if not response.changed:
            raise RuntimeError(f"ChangeEnv {COUNTER_KEY}={i} on {app_for(client)} changed nothing")
        return response

    return op


def create_release_op(app_for: Callable[[int], str], build_for: Callable[[int], str]) -> Any:
    env = {"DATABASE_URL": ENV_VALUE, "LOG_LEVEL": "info", "WORKERS": "4"}

    async def op(ch: grpc.aio.Channel, client: int, i: int) -> object:
        stub = release_pb2_grpc.ReleaseServiceStub(ch)
        request = release_pb2.CreateReleaseRequest(
            app=app_for(client), build_id=build_for(client), env=env, description=f"bench {i}"
        )
        return await stub.CreateRelease(request)

    return op


# --- server streams ---


async def stream_messages_per_s(addr: str, streams: int, events_per_stream: int) -> dict[str, Any]:
    """``streams`` concurrent Watch streams of ``events_per_stream`` events each.

    messages/s counts every stream message (Deployment frames included) per wall second from
    the first call to the last stream's end; ``events_per_s`` counts only events.
    """
    async with channel(addr) as ch:
        stub = deployer_pb2_grpc.DeployerServiceStub(ch)

        async def one(n: int) -> StreamResult:
            request = deployer_pb2.WatchRequest(deployment_id=f"D{n}", after_seq=events_per_stream)
            return await consume(stub.Watch(request))

        await asyncio.gather(*(one(n) for n in range(min(streams, 20))))  # warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(one(n) for n in range(streams)))
        elapsed = time.perf_counter() - start
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"echo stream failed: {errors[0]}")
    messages = sum(r.messages for r in results)
    events = sum(len(r.seqs) for r in results)
    return {
        "streams": streams,
        "events_per_stream": events_per_stream,
        "messages": messages,
        "elapsed_s": elapsed,
        "messages_per_s": messages / elapsed,
        "events_per_s": events / elapsed,
    }


async def echo_floor(addr: str) -> dict[str, Any]:
    def app_for(client: int) -> str:
        return f"echo-{client}"

    def build_for(client: int) -> str:
        return "BECHOECHOEC"

    out: dict[str, Any] = {}
    for name, op in (
        ("env_change", env_change_op(app_for)),
        ("release_create", create_release_op(app_for, build_for)),
    ):
        out[name] = {
            "c1": await run_unary(
                addr, op, clients=1, calls_per_client=1000, warmup_per_client=100
            ),
            "c8": await run_unary(addr, op, clients=8, calls_per_client=250, warmup_per_client=25),
        }
    out["stream_single"] = await stream_messages_per_s(addr, streams=1, events_per_stream=20_000)
    out["stream_200x25"] = await stream_messages_per_s(addr, streams=200, events_per_stream=25)
    return out


def start_echo(workdir: Path, name: str = "echo", pg_url: str = "") -> ServiceProcess:
    """The echo server; with ``pg_url`` its ChangeEnv does a durable PostgreSQL write
    transaction of the same shape as relman's (see bench.echo_server)."""
    args = ["--pg-url", pg_url] if pg_url else []
    echo = ServiceProcess("bench.echo_server", args, log_path=workdir / f"{name}.log")
    echo.start(loopback_addr())
    TOKENS[echo.addr] = tokens.generate()  # same metadata as a call to a relman service
    return echo


# --- durable inserts ---

FLOOR_TABLE = (
    "CREATE TABLE floor_insert (id TEXT PRIMARY KEY, app TEXT NOT NULL, seq INTEGER NOT NULL,"
    " env TEXT NOT NULL, description TEXT NOT NULL, created TEXT NOT NULL)"
)
FLOOR_INSERT_SQLITE = "INSERT INTO floor_insert VALUES (?, ?, ?, ?, ?, ?)"
FLOOR_INSERT_PG = "INSERT INTO floor_insert VALUES (%s, %s, %s, %s, %s, %s)"


def _row(writer: int, i: int) -> tuple[str, str, int, str, str, str]:
    env = json.dumps({"DATABASE_URL": ENV_VALUE, f"KEY_{i}": "x"}, sort_keys=True)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return (f"R{writer:02d}{i:08d}", "bench", i, env, f"env add:KEY_{i}", created)


class InsertFloor:
    """Durable single-row inserts, one transaction each, from ``writers`` threads, each with
    its own connection (opened before timing starts). Subclasses say how to connect/insert.
    Each call inserts new rows (numbering goes on from the previous call)."""

    next_row = 0

    def connect(self) -> Any:
        raise NotImplementedError

    def insert_one(self, conn: Any, writer: int, i: int) -> None:
        raise NotImplementedError

    def time(self, writers: int, per_writer: int, warmup: int) -> Timing:
        first = self.next_row
        self.next_row += warmup + per_writer
        barrier = threading.Barrier(writers + 1)
        timing = Timing()
        lock = threading.Lock()
        failures: list[BaseException] = []

        def writer(w: int) -> None:
            conn = None
            try:
                conn = self.connect()
                for i in range(first, first + warmup):
                    self.insert_one(conn, w, i)
                barrier.wait()
                mine: list[float] = []
                for i in range(first + warmup, first + warmup + per_writer):
                    t0 = time.perf_counter()
                    self.insert_one(conn, w, i)
                    mine.append(time.perf_counter() - t0)
                with lock:
                    timing.samples.extend(mine)
            except BaseException as err:  # reported to the caller
                failures.append(err)
                barrier.abort()
            finally:
                if conn is not None:
                    conn.close()

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        timing.elapsed_s = time.perf_counter() - start
        if failures:
            raise RuntimeError(f"durable insert floor failed: {failures[0]!r}")
        return timing


class SqliteInsertFloor(InsertFloor):
    """SQLite in WAL with synchronous=FULL and BEGIN IMMEDIATE, as relman_common.db does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        setup = sqlite3.connect(path, isolation_level=None)
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute(FLOOR_TABLE)
        setup.close()

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def insert_one(self, conn: sqlite3.Connection, writer: int, i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(FLOOR_INSERT_SQLITE, _row(writer, i))
        conn.execute("COMMIT")


class PgInsertFloor(InsertFloor):
    """PostgreSQL with its default synchronous_commit=on."""

    def __init__(self, url: str) -> None:
        self.url = url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FLOOR_TABLE)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url)

    def insert_one(self, conn: psycopg.Connection, writer: int, i: int) -> None:
        with conn.transaction():
            conn.execute(FLOOR_INSERT_PG, _row(writer, i))


def insert_floor(floor: InsertFloor) -> dict[str, Any]:
    return {
        "c1": floor.time(writers=1, per_writer=500, warmup=50).summary(1),
        "c8": floor.time(writers=8, per_writer=60, warmup=6).summary(8),
    }


# --- whole-process import ---


Command = tuple[list[str], dict[str, str] | None]  # argv, environment (None: inherit)


def process_walls(commands: dict[str, Command], runs: int, warmup: int) -> dict[str, Any]:
    """Wall time of whole processes, ``runs`` measured after ``warmup`` unmeasured each.

    The commands take turns run by run, so that whatever else loads the machine weighs on
    each of them alike and their ratio stays meaningful.
    """
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(warmup + runs):
        for name, (argv, env) in commands.items():
            t0 = time.perf_counter()
            done = subprocess.run(argv, cwd=REPO, capture_output=True, env=env, check=False)
            elapsed = time.perf_counter() - t0
            if done.returncode != 0:
                err = done.stderr.decode(errors="replace")[-2000:]
                raise RuntimeError(f"{argv} failed: {err}")
            if i >= warmup:
                samples[name].append(elapsed)
    return {name: summarize_ms(s) for name, s in samples.items()}


def import_floor_commands() -> dict[str, Command]:
    return {
        "python_bare": ([sys.executable, "-c", "pass"], None),
        "grpc_and_stubs": ([sys.executable, "-c", IMPORT_FLOOR_CODE], None),
    }


def import_floor(runs: int = 15) -> dict[str, Any]:
    return process_walls(import_floor_commands(), runs, 2)
