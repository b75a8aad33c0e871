"""Every RPC of both services refuses calls without a valid token; a watcher that keeps losing
its connection and resuming sees exactly the log of one that never did."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import ServiceDescriptor
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc, types_pb2
from relman_common.auth import call_metadata
from relman_common.tokens import generate
from support.deployer import manifest, read_stream
from support.inproc import World
from support.reliability import figure
from support.rpcs import (
    DEPLOYER_PROCESS,
    IMPLEMENTED,
    RELEASE_PROCESS,
    call_empty,
    served_services,
)

# Each process and the services the contract has it serve (see security/rpcs.py for how a
# service that is not implemented yet, BuildService today, is checked).
PROCESSES: list[tuple[list[ServiceDescriptor], str]] = [
    (RELEASE_PROCESS, "release"),
    (DEPLOYER_PROCESS, "deployer"),
]
BAD_CREDENTIALS: dict[str, list[tuple[str, str]]] = {
    "no token": [],
    "unknown token": call_metadata(generate(), "alice"),
    "not a relman token": [("authorization", "Bearer abc.def")],
    "empty bearer": [("authorization", "Bearer ")],
    "basic auth": [("authorization", "Basic YWRtaW46YWRtaW4=")],
}


@pytest.fixture
async def world(sqlite_url: str, tmp_path: Path) -> AsyncIterator[World]:
    w = await World(sqlite_url, tmp_path / "data", pod_delay=0.05).start()
    try:
        yield w
    finally:
        await w.stop()


async def test_every_rpc_of_both_services_refuses_missing_and_wrong_tokens(world: World) -> None:
    before = world.snapshot()
    refused: dict[str, set[str]] = {}
    unserved: dict[str, set[str]] = {}
    calls = 0
    async with (
        grpc.aio.insecure_channel(world.release_addr) as rchannel,
        grpc.aio.insecure_channel(world.deployer_addr) as dchannel,
    ):
        channels = {"release": rchannel, "deployer": dchannel}
        for services, where in PROCESSES:
            channel = channels[where]
            served = await served_services(channel)
            assert served >= IMPLEMENTED & {s.full_name for s in services}, (where, served)
            for service in services:
                assert service.methods, service.full_name
                for method in service.methods:
                    if service.full_name not in served:
                        # Not implemented yet: nothing answers but UNIMPLEMENTED, whoever calls.
                        for md in [*BAD_CREDENTIALS.values(), call_metadata(world.admin)]:
                            code, _ = await call_empty(channel, method, md)
                            assert code == grpc.StatusCode.UNIMPLEMENTED, (service.name, method)
                        unserved.setdefault(service.name, set()).add(method.name)
                        continue
                    for what, md in BAD_CREDENTIALS.items():
                        code, _ = await call_empty(channel, method, md)
                        calls += 1
                        assert code == grpc.StatusCode.UNAUTHENTICATED, (
                            service.name,
                            method.name,
                            what,
                        )
                        refused.setdefault(service.name, set()).add(method.name)
                    # The same call with the admin token gets past authentication.
                    good, _ = await call_empty(channel, method, call_metadata(world.admin))
                    assert good not in (
                        grpc.StatusCode.UNAUTHENTICATED,
                        grpc.StatusCode.UNIMPLEMENTED,
                    ), (service.name, method.name, good)
    rpcs = sum(len(names) for names in refused.values())
    waiting = sum(len(names) for names in unserved.values())
    total = sum(len(s.methods) for services, _ in PROCESSES for s in services)
    assert rpcs + waiting == total
    assert set(refused) >= {name.split(".")[-1] for name in IMPLEMENTED}
    not_yet = ", ".join(f"{k} {len(v)}" for k, v in unserved.items()) or "none"
    figure(
        "auth-every-rpc",
        f"{rpcs}/{rpcs} served RPCs ({', '.join(f'{k} {len(v)}' for k, v in refused.items())}) x "
        f"{len(BAD_CREDENTIALS)} bad credentials -> {calls}/{calls} UNAUTHENTICATED; "
        f"not served yet: {not_yet} (UNIMPLEMENTED for every caller, the admin too)",
        rpcs=rpcs,
        calls=calls,
        unserved=waiting,
    )
    # The refused calls wrote nothing (the admin calls above only read or were refused).
    assert world.snapshot() == before


async def test_a_watcher_that_keeps_reconnecting_sees_the_same_log_as_one_that_never_did(
    world: World,
) -> None:
    md = call_metadata(world.admin, "alice")
    async with (
        grpc.aio.insecure_channel(world.release_addr) as rchannel,
        grpc.aio.insecure_channel(world.deployer_addr) as dchannel,
    ):
        release = release_pb2_grpc.ReleaseServiceStub(rchannel)
        deployer = deployer_pb2_grpc.DeployerServiceStub(dchannel)
        await release.CreateApp(release_pb2.CreateAppRequest(name="myapp"), metadata=md)
        await release.ImportBuild(
            release_pb2.ImportBuildRequest(
                app="myapp", manifest=manifest(5), images={"web": "registry.example/web:1"}
            ),
            metadata=md,
        )
        started = await read_stream(
            deployer.Promote(deployer_pb2.PromoteRequest(app="myapp"), metadata=md), max_events=1
        )
        deployment_id = started.first.id

        async def steady() -> list[Any]:
            got = await read_stream(
                deployer.Watch(deployer_pb2.WatchRequest(deployment_id=deployment_id), metadata=md)
            )
            return got.events

        async def flaky(every: int) -> tuple[list[Any], int]:
            events: list[Any] = []
            reconnects = 0
            while True:
                call = deployer.Watch(
                    deployer_pb2.WatchRequest(
                        deployment_id=deployment_id, after_seq=events[-1].seq if events else 0
                    ),
                    metadata=md,
                )
                part = await read_stream(call, max_events=every)
                call.cancel()  # disconnects
                events += part.events
                if part.last is not None:  # the stream ended with the outcome
                    return events, reconnects
                reconnects += 1

        whole, (pieces, reconnects), (pieces1, _) = await asyncio.gather(
            steady(), flaky(3), flaky(1)
        )
        final = await deployer.GetDeployment(
            deployer_pb2.GetDeploymentRequest(id=deployment_id), metadata=md
        )

    def log(events: list[Any]) -> list[tuple[Any, ...]]:
        return [(e.seq, e.time.ToJsonString(), e.source, e.reason, e.message) for e in events]

    assert final.outcome == types_pb2.OUTCOME_SUCCEEDED
    assert [e.seq for e in whole] == list(range(1, final.last_seq + 1))
    assert log(pieces) == log(whole)
    assert log(pieces1) == log(whole)
    assert reconnects >= 3
    figure(
        "watch-resume",
        f"watcher reconnecting every 3 events ({reconnects} reconnects) and every event -> "
        f"same {len(whole)}-event log as an unbroken watcher (no gaps, no duplicates)",
        events=len(whole),
        reconnects=reconnects,
    )
