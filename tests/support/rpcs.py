"""Every RPC of the relman.v1 API, by the process that serves it, and how to call any of them
(unary or streaming) with an empty request, for the "every RPC needs a live token" tests.

The lists are built from the descriptors: a new RPC, or a new service of a process, is covered
without touching a test. A service of the contract that is not implemented yet (BuildService
today) is not registered on its server, which answers its RPCs UNIMPLEMENTED before any
interceptor runs: there is nothing behind them that a token could guard. The tests therefore
ask the running server which services it serves (reflection lists exactly the registered
ones) and hold

- every RPC of a served service to the token rule (UNAUTHENTICATED without a live token);
- every RPC of a service it does not serve to UNIMPLEMENTED for *every* caller, the admin
  included — so a service registered without being listed (or the reverse) fails the test,
  and the day BuildService is registered its RPCs are held to the token rule with no edit.

The services in :data:`IMPLEMENTED` must be served: they cannot drop out of the check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from relman.v1 import auth_pb2, build_pb2, deployer_pb2, release_pb2

RELEASE_SERVICE = release_pb2.DESCRIPTOR.services_by_name["ReleaseService"]
TOKEN_SERVICE = auth_pb2.DESCRIPTOR.services_by_name["TokenService"]
BUILD_SERVICE = build_pb2.DESCRIPTOR.services_by_name["BuildService"]
DEPLOYER_SERVICE = deployer_pb2.DESCRIPTOR.services_by_name["DeployerService"]

# What each process serves according to the contract (build.proto: "served by the Release
# service process").
RELEASE_PROCESS: list[ServiceDescriptor] = [RELEASE_SERVICE, TOKEN_SERVICE, BUILD_SERVICE]
DEPLOYER_PROCESS: list[ServiceDescriptor] = [DEPLOYER_SERVICE]
# Implemented today: their servers must serve them.
IMPLEMENTED = {s.full_name for s in (RELEASE_SERVICE, TOKEN_SERVICE, DEPLOYER_SERVICE)}


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def methods(services: list[ServiceDescriptor]) -> Iterator[MethodDescriptor]:
    for service in services:
        yield from service.methods


async def served_services(channel: grpc.aio.Channel) -> set[str]:
    """The full names of the services the server at ``channel`` serves (from reflection,
    which is open without a token)."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    async for response in call:
        call.cancel()
        return {s.name for s in response.list_services_response.service}
    raise AssertionError("reflection answered nothing")


async def _no_messages() -> AsyncIterator[bytes]:
    # A client stream that ends at once: nothing is written that could land after the
    # server's refusal (a late write turns that status into INTERNAL, grpc/grpc#36066).
    for message in ():
        yield message


async def call_empty(
    channel: grpc.aio.Channel, method: MethodDescriptor, md: list[tuple[str, str]]
) -> tuple[grpc.StatusCode, str]:
    """Calls ``method`` with an empty request (no message at all on a client stream), reads
    a response stream to its end; the status code and message it ends with."""
    target = path(method)
    try:
        if method.client_streaming and method.server_streaming:
            async for _ in channel.stream_stream(target)(_no_messages(), metadata=md, timeout=10):
                pass
        elif method.client_streaming:
            await channel.stream_unary(target)(_no_messages(), metadata=md, timeout=10)
        elif method.server_streaming:
            async for _ in channel.unary_stream(target)(b"", metadata=md, timeout=10):
                pass
        else:
            await channel.unary_unary(target)(b"", metadata=md, timeout=10)
    except grpc.aio.AioRpcError as err:
        return err.code(), str(err.details() or "")
    return grpc.StatusCode.OK, ""
