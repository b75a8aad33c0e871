"""Every RPC of both services refuses calls without a valid token; a watcher that keeps losing
its connection and resuming sees exactly the log of one that never did."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from deployer.support import manifest, read_stream
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from relman.v1 import auth_pb2, deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc
from relman_common.auth import call_metadata
from relman_common.tokens import generate

from .inproc import World
from .support import figure

SERVICES: list[tuple[ServiceDescriptor, str]] = [
    (release_pb2.DESCRIPTOR.services_by_name["ReleaseService"], "release"),
    (auth_pb2.DESCRIPTOR.services_by_name["TokenService"], "release"),
    (deployer_pb2.DESCRIPTOR.services_by_name["DeployerService"], "deployer"),
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


async def call_rpc(
    channel: grpc.aio.Channel, service: ServiceDescriptor, name: str, md: list[tuple[str, str]]
) -> grpc.StatusCode:
    """Calls ``service.name`` with an empty request (read to the end when it streams)."""
    method = service.methods_by_name[name]
    request_cls: Any = message_factory.GetMessageClass(method.input_type)
    response_cls: Any = message_factory.GetMessageClass(method.output_type)
    path = f"/{service.full_name}/{name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=request_cls.SerializeToString,
                response_deserializer=response_cls.FromString,
            )(request_cls(), metadata=md, timeout=10)
            async for _ in stream:
                pass
        else:
            await channel.unary_unary(
                path,
                request_serializer=request_cls.SerializeToString,
                response_deserializer=response_cls.FromString,
            )(request_cls(), metadata=md, timeout=10)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_every_rpc_of_both_services_refuses_missing_and_wrong_tokens(world: World) -> None:
    before = world.snapshot()
    refused: dict[str, set[str]] = {}
    calls = 0
    async with (
        grpc.aio.insecure_channel(world.release_addr) as rchannel,
        grpc.aio.insecure_channel(world.deployer_addr) as dchannel,
    ):
        channels = {"release": rchannel, "deployer": dchannel}
        for service, where in SERVICES:
            assert service.methods, service.full_name
            for name in service.methods_by_name:
                for what, md in BAD_CREDENTIALS.items():
                    code = await call_rpc(channels[where], service, name, md)
                    calls += 1
                    assert code == grpc.StatusCode.UNAUTHENTICATED, (service.name, name, what)
                    refused.setdefault(service.name, set()).add(name)
                # The same call with the admin token gets past authentication.
                good = await call_rpc(channels[where], service, name, call_metadata(world.admin))
                assert good != grpc.StatusCode.UNAUTHENTICATED, (service.name, name)
    rpcs = sum(len(names) for names in refused.values())
    total = sum(len(s.methods) for s, _ in SERVICES)
    assert rpcs == total
    figure(
        "auth-every-rpc",
        f"{rpcs}/{total} RPCs ({', '.join(f'{k} {len(v)}' for k, v in refused.items())}) x "
        f"{len(BAD_CREDENTIALS)} bad credentials -> {calls}/{calls} UNAUTHENTICATED",
        rpcs=rpcs,
        calls=calls,
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

    assert final.outcome == "succeeded"
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
