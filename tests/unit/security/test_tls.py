"""TLS and mutual TLS on the Release service, with certificates made for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from relman.v1 import release_pb2 as pb
from relman.v1 import release_pb2_grpc
from relman_common.tls import ClientTls, ServerTls, aio_channel
from support.security import Pki, SecureServer, metadata, start_secure_server

Code = grpc.StatusCode


def tls_connect(tls: ClientTls) -> Callable[[str], grpc.aio.Channel]:
    return lambda addr: aio_channel(addr, tls)


async def list_apps(channel: grpc.aio.Channel, token: str) -> grpc.StatusCode:
    stub = release_pb2_grpc.ReleaseServiceStub(channel)
    try:
        await stub.ListApps(pb.ListAppsRequest(), metadata=metadata(token), timeout=5)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return Code.OK


@pytest.fixture
async def tls_server(sqlite_url: str, tmp_path: Path, pki: Pki) -> AsyncIterator[SecureServer]:
    server = await start_secure_server(
        sqlite_url,
        tmp_path / "data",
        tls=ServerTls(pki.server_cert, pki.server_key),
        connect=tls_connect(ClientTls(ca=pki.ca)),
    )
    try:
        yield server
    finally:
        await server.channel.close()
        await server.service.stop(grace=0)


@pytest.fixture
async def mtls_server(sqlite_url: str, tmp_path: Path, pki: Pki) -> AsyncIterator[SecureServer]:
    server = await start_secure_server(
        sqlite_url,
        tmp_path / "data",
        tls=ServerTls(pki.server_cert, pki.server_key, pki.client_ca),
        connect=tls_connect(ClientTls(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)),
    )
    try:
        yield server
    finally:
        await server.channel.close()
        await server.service.stop(grace=0)


async def test_a_tls_server_serves_a_client_that_trusts_its_ca(
    tls_server: SecureServer, pki: Pki
) -> None:
    assert await list_apps(tls_server.channel, tls_server.admin) == Code.OK
    health = health_pb2_grpc.HealthStub(tls_server.channel)
    resp = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    by_name = f"localhost:{tls_server.service.port}"
    async with aio_channel(by_name, ClientTls(ca=pki.ca)) as channel:
        assert await list_apps(channel, tls_server.admin) == Code.OK


async def test_a_tls_server_refuses_plaintext_and_clients_that_do_not_trust_it(
    tls_server: SecureServer, pki: Pki
) -> None:
    async with grpc.aio.insecure_channel(tls_server.addr) as plaintext:
        assert await list_apps(plaintext, tls_server.admin) == Code.UNAVAILABLE
    async with aio_channel(tls_server.addr, ClientTls(ca=pki.client_ca)) as wrong_ca:
        assert await list_apps(wrong_ca, tls_server.admin) == Code.UNAVAILABLE


async def test_tls_does_not_replace_the_token(tls_server: SecureServer) -> None:
    assert await list_apps(tls_server.channel, "rmt_" + "x" * 43) == Code.UNAUTHENTICATED


async def test_mutual_tls_serves_a_client_with_a_certificate_of_the_client_ca(
    mtls_server: SecureServer,
) -> None:
    assert await list_apps(mtls_server.channel, mtls_server.admin) == Code.OK


async def test_mutual_tls_refuses_clients_without_a_trusted_certificate(
    mtls_server: SecureServer, pki: Pki
) -> None:
    async with aio_channel(mtls_server.addr, ClientTls(ca=pki.ca)) as no_cert:
        assert await list_apps(no_cert, mtls_server.admin) == Code.UNAVAILABLE
    stranger = ClientTls(ca=pki.ca, cert=pki.stranger_cert, key=pki.stranger_key)
    async with aio_channel(mtls_server.addr, stranger) as untrusted:
        assert await list_apps(untrusted, mtls_server.admin) == Code.UNAVAILABLE
    async with grpc.aio.insecure_channel(mtls_server.addr) as plaintext:
        assert await list_apps(plaintext, mtls_server.admin) == Code.UNAVAILABLE
