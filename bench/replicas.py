"""Replicas on PostgreSQL (issue 14): Watch on the Deployer that does not run the deployment
against Watch on the one that does, and the takeover of a killed owner's deployment.

- Fan-out lag, same vs other replica: one Release service and two Deployers on one fresh
  PostgreSQL database. A deployment runs on Deployer A (WATCH_REPLICAS pods, each ready after
  POD_DELAY s); WATCHERS_EACH watchers on A and as many on B open once it has started. Lag of
  an event received live = receive time - the event's time (stamped by A's backend when it
  observed the event; same host clock); events stamped before a stream opened are replays and
  not counted. B hears of A's writes through LISTEN/NOTIFY (target: B's lag p99 within 2x of
  A's).
- Takeover: the same two Deployers with lease TTL LEASE_TTL s; a deployment runs on A, A gets
  ``kill -9``; takeover = the time from the kill to the first event B writes for it (seen by a
  watcher on B) (target: within TTL + 2 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc
from relman_common.tokens import DEPLOYER_TOKEN_FILE

from bench import pg
from bench.clients import TOKENS, StreamResult, channel, consume
from bench.procs import ServiceProcess, loopback_addr
from bench.release import BASE_ENV, start_release
from bench.seed import app_with_build
from bench.stats import summarize_ms

WATCHERS_EACH = 50
POD_DELAY = 0.3
WATCH_REPLICAS = 6
LEASE_TTL = 2.0
RELEASE_NAME = "replicas-release"


def start_deployer(
    workdir: Path, name: str, release_addr: str, database_url: str, pod_delay: float
) -> ServiceProcess:
    data_dir = workdir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "--release-addr",
        release_addr,
        "--token-file",
        str(workdir / RELEASE_NAME / DEPLOYER_TOKEN_FILE),
        "--data-dir",
        str(data_dir),
        "--database-url",
        database_url,
        "--sim-pod-delay",
        str(pod_delay),
        "--lease-ttl",
        str(LEASE_TTL),
    ]
    deployer = ServiceProcess("relman_deployer", args, log_path=workdir / f"{name}.log")
    deployer.start(loopback_addr())
    TOKENS[deployer.addr] = TOKENS[release_addr]
    return deployer


def live_lags_s(results: list[StreamResult]) -> tuple[list[float], int, int]:
    """Lags (s) of the events received live, how many streams got every event, and errors."""
    lags: list[float] = []
    complete = errors = 0
    for res in results:
        errors += bool(res.error)
        last = res.last.last_seq if res.last is not None else -1
        complete += not res.gaps_or_duplicates(last) and not res.error
        for _seq, stamped, received, _reason in res.received:
            if stamped >= res.opened_at:
                lags.append(received - stamped)
    return lags, complete, errors


async def fan_out(release_addr: str, a: ServiceProcess, b: ServiceProcess) -> dict[str, Any]:
    app = "fanout"
    async with channel(release_addr) as rch, channel(a.addr) as ach, channel(b.addr) as bch:
        rstub = release_pb2_grpc.ReleaseServiceStub(rch)
        owner = deployer_pb2_grpc.DeployerServiceStub(ach)
        first = await app_with_build(
            rstub, app, env=BASE_ENV, count=WATCH_REPLICAS, minimum=100, maximum=150
        )
        await consume(
            owner.Promote(deployer_pb2.PromoteRequest(app=app, release_id=first.release.id))
        )
        change = await rstub.ChangeEnv(
            release_pb2.ChangeEnvRequest(app=app, set={"ROUND": "fan-out"})
        )
        stream = owner.Promote(
            deployer_pb2.PromoteRequest(app=app, release_id=change.release.id)
        ).__aiter__()
        promoter = StreamResult(opened_at=time.time())
        promoter.first = (await stream.__anext__()).deployment
        request = deployer_pb2.WatchRequest(deployment_id=promoter.first.id)
        stubs = {"same": owner, "other": deployer_pb2_grpc.DeployerServiceStub(bch)}
        watches = {
            where: [consume(stub.Watch(request)) for _ in range(WATCHERS_EACH)]
            for where, stub in stubs.items()
        }
        same, other, _ = await asyncio.gather(
            asyncio.gather(*watches["same"]),
            asyncio.gather(*watches["other"]),
            consume(stream, promoter),
        )
    out: dict[str, Any] = {"watchers_each": WATCHERS_EACH, "pod_delay_s": POD_DELAY}
    for where, results in (("same", same), ("other", other)):
        lags, complete, errors = live_lags_s(results)
        out[where] = {
            "lag_ms": summarize_ms(lags),
            "live_events": len(lags),
            "complete": complete,
            "errors": errors,
        }
    return out


async def takeover(
    workdir: Path, release_addr: str, a: ServiceProcess, b: ServiceProcess
) -> dict[str, Any]:
    """A deployment on ``a`` (which holds the lease), ``a`` killed; seconds until ``b``'s first
    event of it."""
    app = "takeover"
    async with channel(release_addr) as rch, channel(a.addr) as ach, channel(b.addr) as bch:
        rstub = release_pb2_grpc.ReleaseServiceStub(rch)
        owner = deployer_pb2_grpc.DeployerServiceStub(ach)
        first = await app_with_build(
            rstub, app, env=BASE_ENV, count=WATCH_REPLICAS, minimum=100, maximum=150
        )
        stream = owner.Promote(
            deployer_pb2.PromoteRequest(app=app, release_id=first.release.id)
        ).__aiter__()
        started = (await stream.__anext__()).deployment
        for _ in range(3):  # under way
            await stream.__anext__()
        watcher = deployer_pb2_grpc.DeployerServiceStub(bch)
        watch = watcher.Watch(deployer_pb2.WatchRequest(deployment_id=started.id)).__aiter__()
        last_seq = 0
        while last_seq < 3:
            update = await watch.__anext__()
            if update.HasField("event"):
                last_seq = update.event.seq
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGKILL)
        killed = time.time()
        a.proc.wait(10)
        taken = 0.0
        async for update in watch:
            if update.HasField("event") and update.event.time.ToNanoseconds() / 1e9 > killed:
                taken = update.event.time.ToNanoseconds() / 1e9 - killed
                break
        outcome = ""
        async for update in watch:
            if update.HasField("deployment") and update.deployment.outcome:
                outcome = str(update.deployment.outcome)
    return {"lease_ttl_s": LEASE_TTL, "takeover_s": taken, "outcome_code": outcome}


async def run(workdir: Path) -> dict[str, Any]:
    why = pg.pg_available()
    if why:
        raise RuntimeError(why)
    with pg.fresh_database("replicas") as url:
        release = start_release(workdir, RELEASE_NAME, url)
        deployers = [
            start_deployer(workdir, f"replica-{i}", release.addr, url, POD_DELAY) for i in (0, 1)
        ]
        try:
            out = {"fan_out": await fan_out(release.addr, deployers[0], deployers[1])}
            out["takeover"] = await takeover(workdir, release.addr, deployers[0], deployers[1])
            return out
        finally:
            for d in deployers:
                d.stop()
            release.stop()
