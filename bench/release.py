"""Release service: env change and release create, 1 and 8 concurrent clients, per database.

Each client works on its own app (``bench-<n>``), so 8 clients measure how the service scales
with independent writers; on SQLite they still share one write lock. The floors for these
numbers (the echo server with the same calls, and the durable insert with as many writers) are
measured again here, in turns with the service, round by round, so that other load on the
machine weighs on both alike. After each env-change run the bench checks that every client's
last change is its app's env (nothing lost).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from relman.v1 import release_pb2, release_pb2_grpc
from relman_common.tokens import ADMIN_TOKEN_FILE, read_token_file

from bench.clients import TOKENS, Timing, UnaryOp, channel, time_unary
from bench.floors import (
    COUNTER_KEY,
    ENV_VALUE,
    InsertFloor,
    create_release_op,
    env_change_op,
    start_echo,
)
from bench.procs import ServiceProcess, loopback_addr, memory_kib
from bench.seed import apps_with_builds

CLIENTS = (1, 8)
CALLS = {1: 300, 8: 60}  # measured calls per client, over all rounds
WARMUP = {1: 30, 8: 6}  # before the first round
ROUNDS = 3
BASE_ENV = {"DATABASE_URL": ENV_VALUE, "LOG_LEVEL": "info", "WORKERS": "4"}


def start_release(workdir: Path, name: str, database_url: str = "") -> ServiceProcess:
    data_dir = workdir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    args = ["--data-dir", str(data_dir)]
    if database_url:
        args += ["--database-url", database_url]
    service = ServiceProcess("relman_release", args, log_path=workdir / f"{name}.log")
    service.start(loopback_addr())
    # Authentication is on by default: the first start wrote the admin token.
    TOKENS[service.addr] = read_token_file(data_dir / ADMIN_TOKEN_FILE)
    return service


def app_for(client: int) -> str:
    return f"bench-{client}"


async def in_turns(
    addr: str,
    echo_addr: str,
    floor: InsertFloor,
    op: UnaryOp,
    clients: int,
    echo_tx_addr: str = "",
) -> tuple[dict[str, Any], int]:
    """ROUNDS rounds of: the echo floor, [the echo floor with a durable write transaction per
    call,] the service, the durable insert floor.

    Returns the service's summary with its floors, and the last call number used.
    """
    service, echo, echo_tx, insert = Timing(), Timing(), Timing(), Timing()
    per_round = CALLS[clients] // ROUNDS
    first = 0
    targets = [(echo_addr, echo), (addr, service)]
    if echo_tx_addr:
        targets.insert(1, (echo_tx_addr, echo_tx))
    for r in range(ROUNDS):
        warm = WARMUP[clients] if r == 0 else 0
        for target, timing in targets:
            timing.add(
                await time_unary(
                    target,
                    op,
                    clients=clients,
                    calls_per_client=per_round,
                    warmup_per_client=warm,
                    first_call=first,
                )
            )
        insert.add(await asyncio.to_thread(floor.time, clients, per_round, warm))
        first += warm + per_round
    summary = {
        **service.summary(clients),
        "floor_echo": echo.summary(clients),
        "floor_insert": insert.summary(clients),
    }
    if echo_tx_addr:
        summary["floor_echo_tx"] = echo_tx.summary(clients)
    return summary, first - 1


async def measure(
    addr: str, echo_addr: str, floor: InsertFloor, echo_tx_addr: str = ""
) -> dict[str, Any]:
    apps = [app_for(n) for n in range(max(CLIENTS))]
    seeded = await apps_with_builds(addr, apps, env=BASE_ENV)
    builds = {app: r.build.id for app, r in seeded.items()}

    def build_for(client: int) -> str:
        return builds[app_for(client)]

    out: dict[str, Any] = {}
    ops = {
        "env_change": env_change_op(app_for),
        "release_create": create_release_op(app_for, build_for),
    }
    for name, op in ops.items():
        out[name] = {}
        for clients in CLIENTS:
            tx = echo_tx_addr if name == "env_change" else ""
            summary, last = await in_turns(addr, echo_addr, floor, op, clients, tx)
            out[name][f"c{clients}"] = summary
            if name == "env_change":
                await _check_env_kept(addr, [app_for(n) for n in range(clients)], last)
    return out


async def _check_env_kept(addr: str, apps: list[str], last: int) -> None:
    """Each app's latest env holds its client's last counter value and the base env."""
    async with channel(addr) as ch:
        stub = release_pb2_grpc.ReleaseServiceStub(ch)
        for app in apps:
            env = dict((await stub.GetEnv(release_pb2.GetEnvRequest(app=app))).env)
            if env != {**BASE_ENV, COUNTER_KEY: str(last)}:
                want = f"the base env and {COUNTER_KEY}={last}"
                raise RuntimeError(f"{app}: env after the env-change run is {env}, want {want}")


async def run(
    workdir: Path,
    name: str,
    echo_addr: str,
    floor: InsertFloor,
    database_url: str = "",
    echo_tx_url: str = "",
) -> dict[str, Any]:
    """The service on ``database_url`` (SQLite when empty); with ``echo_tx_url`` (a PostgreSQL
    database) env changes are also compared with an echo server writing there."""
    service = start_release(workdir, name, database_url)
    echo_tx = start_echo(workdir, f"{name}-echo-tx", echo_tx_url) if echo_tx_url else None
    try:
        idle = memory_kib(service.pid)
        tx_addr = echo_tx.addr if echo_tx is not None else ""
        result = await measure(service.addr, echo_addr, floor, tx_addr)
        result["memory_kib"] = {"idle": idle, "after_load": memory_kib(service.pid)}
        return result
    finally:
        service.stop()
        if echo_tx is not None:
            echo_tx.stop()
