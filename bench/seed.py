"""Putting apps and builds into a running Release service through its API."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
from relman.v1 import release_pb2, release_pb2_grpc

from bench.clients import channel

if TYPE_CHECKING:
    from relman.v1.release_pb2_grpc import ReleaseServiceAsyncStub


def manifest(count: int = 1, minimum: int = 50, maximum: int = 200) -> str:
    return (
        "services:\n"
        "  web:\n"
        "    build: .\n"
        "    command: bin/web\n"
        "    port: 5000\n"
        "    health: /health\n"
        f"    scale: {{count: {count}}}\n"
        f"    deployment: {{minimum: {minimum}, maximum: {maximum}}}\n"
    )


async def app_with_build(
    stub: ReleaseServiceAsyncStub,
    app: str,
    *,
    count: int = 1,
    minimum: int = 50,
    maximum: int = 200,
    env: dict[str, str] | None = None,
) -> release_pb2.ImportBuildResponse:
    """Create ``app`` (if missing), give it an env, and import one build (which makes a release).

    Returns the ImportBuild response: the build and the release holding it.
    """
    try:
        await stub.CreateApp(release_pb2.CreateAppRequest(name=app))
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
    if env:
        await stub.ChangeEnv(release_pb2.ChangeEnvRequest(app=app, set=env))
    response: release_pb2.ImportBuildResponse = await stub.ImportBuild(
        release_pb2.ImportBuildRequest(
            app=app,
            manifest=manifest(count, minimum, maximum),
            images={"web": f"registry.example/{app}/web:1"},
            description="build 0a1b2c3d4e bench",
            git_sha="0a1b2c3d4e5f",
        )
    )
    return response


async def apps_with_builds(
    addr: str, apps: list[str], *, parallel: int = 8, **kwargs: object
) -> dict[str, release_pb2.ImportBuildResponse]:
    """``app_with_build`` for every app, ``parallel`` at a time, over one channel."""
    out: dict[str, release_pb2.ImportBuildResponse] = {}
    sem = asyncio.Semaphore(parallel)
    async with channel(addr) as ch:
        stub = release_pb2_grpc.ReleaseServiceStub(ch)

        async def one(app: str) -> None:
            async with sem:
                out[app] = await app_with_build(stub, app, **kwargs)  # type: ignore[arg-type]

        await asyncio.gather(*(one(a) for a in apps))
    return out
