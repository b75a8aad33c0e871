"""Concurrency: many env changes of one app at once lose nothing; many promotes of one app at
once run exactly one deployment and tell the others which one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc, types_pb2
from relman_common.auth import call_metadata
from support.deployer import manifest, read_stream
from support.inproc import World
from support.reliability import db_kind, figure


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    w = await World(db_url, tmp_path / "data", pod_delay=0.5).start()
    try:
        yield w
    finally:
        await w.stop()


async def test_env_change_never_loses_a_concurrent_key(world: World, db_url: str) -> None:
    n = 100
    async with grpc.aio.insecure_channel(world.release_addr) as channel:
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        md = call_metadata(world.admin, "alice")
        await stub.CreateApp(release_pb2.CreateAppRequest(name="myapp"), metadata=md)
        imported = await stub.ImportBuild(
            release_pb2.ImportBuildRequest(
                app="myapp", manifest=manifest(1), images={"web": "registry.example/web:1"}
            ),
            metadata=md,
        )
        changes = await asyncio.gather(
            *(
                stub.ChangeEnv(
                    release_pb2.ChangeEnvRequest(app="myapp", set={f"KEY_{i:03d}": f"value {i}"}),
                    metadata=md,
                )
                for i in range(n)
            )
        )
        env = await stub.GetEnv(release_pb2.GetEnvRequest(app="myapp"), metadata=md)
        listed = await stub.ListReleases(
            release_pb2.ListReleasesRequest(app="myapp", limit=n + 1), metadata=md
        )
    release_ids = {c.release.id for c in changes}
    assert all(c.changed for c in changes)
    assert len(release_ids) == n
    assert sorted(c.description for c in changes) == [f"env add:KEY_{i:03d}" for i in range(n)]
    assert all(c.release.build_id == imported.build.id for c in changes)
    kept = {f"KEY_{i:03d}": f"value {i}" for i in range(n)}
    assert dict(env.env) == kept
    # Each release holds its own key and every key of the releases before it.
    sizes = sorted(len(c.release.env) for c in changes)
    assert sizes == list(range(1, n + 1))
    assert {r.id for r in listed.releases} == release_ids | {imported.release.id}
    assert world.count("releases") == n + 1
    figure(
        "env-changes",
        f"{n} concurrent changes -> {len(release_ids)} releases, "
        f"{sum(k in env.env for k in kept)}/{n} keys kept ({db_kind(db_url)})",
        changes=n,
        releases=len(release_ids),
        keys_kept=len(env.env),
        db=db_kind(db_url),
    )


async def test_concurrent_promotes_run_exactly_one_and_refuse_the_rest_naming_it(
    world: World, db_url: str
) -> None:
    n = 10
    async with (
        grpc.aio.insecure_channel(world.release_addr) as rchannel,
        grpc.aio.insecure_channel(world.deployer_addr) as dchannel,
    ):
        release = release_pb2_grpc.ReleaseServiceStub(rchannel)
        deployer = deployer_pb2_grpc.DeployerServiceStub(dchannel)
        md = call_metadata(world.admin, "alice")
        await release.CreateApp(release_pb2.CreateAppRequest(name="myapp"), metadata=md)
        resp = await release.ImportBuild(
            release_pb2.ImportBuildRequest(
                app="myapp", manifest=manifest(2), images={"web": "registry.example/web:1"}
            ),
            metadata=md,
        )

        async def promote(actor: str) -> object:
            stream = deployer.Promote(
                deployer_pb2.PromoteRequest(app="myapp"),
                metadata=call_metadata(world.admin, actor),
            )
            try:
                return await read_stream(stream)
            except grpc.aio.AioRpcError as err:
                return err

        results = await asyncio.gather(*(promote(f"user{i}") for i in range(n)))
        listed = await deployer.ListDeployments(
            deployer_pb2.ListDeploymentsRequest(app="myapp"), metadata=md
        )
        app = await release.GetApp(release_pb2.GetAppRequest(name="myapp"), metadata=md)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    ran = [r for r in results if not isinstance(r, grpc.aio.AioRpcError)]
    assert (len(ran), len(refused)) == (1, n - 1)
    winner = ran[0].first  # type: ignore[attr-defined]
    assert ran[0].last.outcome == types_pb2.OUTCOME_SUCCEEDED  # type: ignore[attr-defined]
    expected = f"app is currently updating (deployment {winner.id}, started by {winner.actor} at "
    for err in refused:
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (err.details() or "").startswith(expected), err.details()
    assert [d.id for d in listed.deployments] == [winner.id]
    assert app.active_release_id == resp.release.id
    figure(
        "concurrent-promotes",
        f"{n} concurrent promotes -> 1 ran ({winner.id} by {winner.actor}), {len(refused)} "
        f"refused with FAILED_PRECONDITION naming it ({db_kind(db_url)})",
        promotes=n,
        ran=len(ran),
        refused=len(refused),
        db=db_kind(db_url),
    )
