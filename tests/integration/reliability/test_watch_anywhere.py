"""Watch on a Deployer that does not run the deployment is live (SPEC 10): on PostgreSQL the
Deployer that writes the events notifies (NOTIFY, in the writing transaction) and every other
Deployer's listener wakes its watchers; nobody polls.

The watchers' polling is turned off here (an hour between looks at the database), so a watch
on the other Deployer that still follows the deployment to its end was woken by notifications.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc, types_pb2
from relman_common.auth import call_metadata
from relman_deployer.api.server import DeployerService, Settings
from support.deployer import manifest, read_stream
from support.helpers import free_port
from support.inproc import World

pytestmark = pytest.mark.xdist_group("reliability-listen")

# The module (its package re-exports the function under the same name).
watch_module = importlib.import_module("relman_deployer.events.watch")


@pytest.fixture
async def two(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[World, DeployerService]]:
    world = await World(pg_url, tmp_path / "data", pod_delay=0.1).start()
    other = DeployerService(
        f"127.0.0.1:{free_port()}",
        Settings(
            database_url=pg_url,
            release_addr=world.release_addr,
            backend_options={"pod_delay": 0.1},
            lease_ttl=2.0,
            auth=True,
            token=world.deployer_token,
        ),
    )
    await other.start()
    try:
        yield world, other
    finally:
        await other.stop(grace=0)
        await world.stop()


async def test_a_watch_on_another_deployer_follows_the_deployment_by_notifications(
    two: tuple[World, DeployerService], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, other = two
    monkeypatch.setattr(watch_module, "REMOTE_POLL_SECONDS", 3600.0)
    monkeypatch.setattr(watch_module, "LOCAL_POLL_SECONDS", 3600.0)
    assert other.orchestrator is not None and other.orchestrator.listener is not None
    await asyncio.wait_for(other.orchestrator.listener.connected.wait(), 30)
    md = call_metadata(world.admin, "alice")
    async with (
        grpc.aio.insecure_channel(world.release_addr) as channel,
        grpc.aio.insecure_channel(world.deployer_addr) as owner_channel,
        grpc.aio.insecure_channel(other.addr) as other_channel,
    ):
        stub = release_pb2_grpc.ReleaseServiceStub(channel)
        await stub.CreateApp(release_pb2.CreateAppRequest(name="myapp"), metadata=md)
        imported = await stub.ImportBuild(
            release_pb2.ImportBuildRequest(
                app="myapp", manifest=manifest(3), images={"web": "registry.example/web:1"}
            ),
            metadata=md,
        )
        owner = deployer_pb2_grpc.DeployerServiceStub(owner_channel)
        promote = owner.Promote(
            deployer_pb2.PromoteRequest(app="myapp", release_id=imported.release.id), metadata=md
        )
        started = await read_stream(promote, max_events=1)  # running on the world's Deployer
        watcher = deployer_pb2_grpc.DeployerServiceStub(other_channel)
        watched = await asyncio.wait_for(
            read_stream(
                watcher.Watch(
                    deployer_pb2.WatchRequest(deployment_id=started.first.id), metadata=md
                )
            ),
            60,
        )
        promoted = await read_stream(promote, so_far=started)
    assert watched.last is not None and watched.last.outcome == types_pb2.OUTCOME_SUCCEEDED
    assert [e.seq for e in watched.events] == [e.seq for e in promoted.events]
    assert len(watched.events) > 10
