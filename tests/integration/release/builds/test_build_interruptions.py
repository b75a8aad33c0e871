"""Builds interrupted by a stop, a crash or a dead replica end FAILED ``interrupted``, never
stuck RUNNING, and make no release; another live replica's running build is left alone.
The builds wait on a registry that never answers, so they are running when the service goes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from relman.v1 import build_pb2 as bpb
from relman.v1 import build_pb2_grpc, release_pb2_grpc
from relman.v1 import release_pb2 as pb
from relman_release.app import builds
from support.builds import (
    BuildServer,
    SilentRegistry,
    app_source,
    archive,
    chunks_of,
    hanging_source,
    sha256,
)
from support.helpers import ServiceProcess, free_port, wait_for

from ..test_release_process import reflected_services

TTL = 1.0


async def test_a_stopping_service_fails_its_running_build_as_interrupted(
    build_server: BuildServer, silent_registry: SilentRegistry
) -> None:
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    build = await s.create("myapp", archive(hanging_source(silent_registry)))
    request = bpb.BuildLogsRequest(app="myapp", id=build.id, follow=True)
    stream = s.builds.BuildLogs(request)
    while (await stream.read()).line.seq < 3:  # waiting for its base image
        pass
    assert [p.name.startswith(build.id) for p in (s.data_dir / "builds").iterdir()] == [True]

    await s.service.stop(grace=0.5)
    ended = builds.get_build(s.uow, "myapp", build.id)
    assert (ended.status.value, ended.reason, ended.release_id) == ("failed", "interrupted", "")
    assert ended.ended is not None and s.rows("releases") == 0
    silent_registry.close()  # its thread, still waiting, ends and removes its directory
    wait_for(lambda: not list((s.data_dir / "builds").iterdir()), what="temporary dir removed")
    assert builds.get_build(s.uow, "myapp", build.id) == ended  # nothing wrote over it


class Rack:
    """A Release service process with authentication off and a short build heartbeat."""

    def __init__(self, tmp_path: Path, name: str, database_url: str = "") -> None:
        self.addr = f"127.0.0.1:{free_port()}"
        self.data_dir = tmp_path / name
        self.process = ServiceProcess(
            "relman_release",
            ["--addr", self.addr, "--data-dir", str(self.data_dir)],
            env={
                "RELMAN_AUTH": "off",
                "RELMAN_DATABASE_URL": database_url,
                "RELMAN_BUILD_HEARTBEAT_TTL": str(TTL),
            },
            log_path=tmp_path / f"{name}.log",
        )

    def start(self) -> Rack:
        self.process.start(self.addr)
        return self

    def stubs(self) -> tuple[grpc.Channel, object, object]:
        channel = grpc.insecure_channel(self.addr)
        return (
            channel,
            release_pb2_grpc.ReleaseServiceStub(channel),
            build_pb2_grpc.BuildServiceStub(channel),
        )

    def start_hanging_build(self, registry: SilentRegistry) -> str:
        """A build that is running (waiting on ``registry``) when this returns; its id."""
        data = archive(hanging_source(registry))
        channel, releases, build_stub = self.stubs()
        with channel:
            releases.CreateApp(pb.CreateAppRequest(name="myapp"), timeout=10)  # type: ignore[attr-defined]
            header = bpb.UploadSourceHeader(app="myapp", sha256=sha256(data), size=len(data))

            def upload() -> Iterator[bpb.UploadSourceRequest]:
                yield bpb.UploadSourceRequest(header=header)
                for chunk in chunks_of(data):
                    yield bpb.UploadSourceRequest(chunk=chunk)

            build_stub.UploadSource(upload(), timeout=10)  # type: ignore[attr-defined]
            request = bpb.CreateBuildRequest(app="myapp", source_sha256=sha256(data))
            build_id = str(build_stub.CreateBuild(request, timeout=10).id)  # type: ignore[attr-defined]
        wait_for(lambda: self.build(build_id).log_lines >= 3, what="the build waiting for its base")
        return build_id

    def build(self, build_id: str) -> pb.Build:
        channel, releases, _ = self.stubs()
        with channel:
            request = pb.GetBuildRequest(app="myapp", id=build_id)
            return releases.GetBuild(request, timeout=10)  # type: ignore[attr-defined, no-any-return]

    def releases(self) -> list[pb.Release]:
        channel, releases, _ = self.stubs()
        with channel:
            listed = releases.ListReleases(pb.ListReleasesRequest(app="myapp"), timeout=10)  # type: ignore[attr-defined]
            return list(listed.releases)


@pytest.fixture
def racks() -> Iterator[list[Rack]]:
    started: list[Rack] = []
    try:
        yield started
    finally:
        for rack in started:
            rack.process.stop()


def test_a_build_running_when_the_service_is_killed_is_failed_after_the_restart(
    tmp_path: Path, silent_registry: SilentRegistry, racks: list[Rack]
) -> None:
    rack = Rack(tmp_path, "data").start()
    racks.append(rack)
    assert "relman.v1.BuildService" in reflected_services(rack.addr)
    with grpc.insecure_channel(rack.addr) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="relman.v1.BuildService"), timeout=10
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    build_id = rack.start_hanging_build(silent_registry)
    rack.process.kill9()
    assert [p.name.split("-")[0] for p in (rack.data_dir / "builds").iterdir()] == [build_id]

    rack.start()
    ended = wait_for(
        lambda: (b := rack.build(build_id)).status == pb.BUILD_STATUS_FAILED and b,
        timeout=4 * TTL + 5,
        what="the interrupted build failed",
    )
    assert (ended.reason, ended.release_id) == ("interrupted", "")
    assert rack.releases() == []
    wait_for(lambda: not list((rack.data_dir / "builds").iterdir()), what="its directory removed")


def test_replicas_leave_a_live_runners_build_alone_and_fail_a_dead_ones(
    tmp_path: Path, pg_url: str, silent_registry: SilentRegistry, racks: list[Rack]
) -> None:
    """Two Release services on one PostgreSQL: B sees A's build running while A lives, and
    fails it within the heartbeat's TTL once A is killed."""
    a = Rack(tmp_path, "a", pg_url).start()
    b = Rack(tmp_path, "b", pg_url).start()
    racks += [a, b]
    build_id = a.start_hanging_build(silent_registry)
    time.sleep(3 * TTL)  # B has swept for dead runners twice or more meanwhile
    assert b.build(build_id).status == pb.BUILD_STATUS_RUNNING

    a.process.kill9()
    killed = time.monotonic()
    ended = wait_for(
        lambda: (x := b.build(build_id)).status == pb.BUILD_STATUS_FAILED and x,
        timeout=4 * TTL + 5,
        what="B failing A's build",
    )
    assert time.monotonic() - killed < 3 * TTL + 2
    assert (ended.reason, ended.release_id) == ("interrupted", "")
    assert b.releases() == []


async def test_an_app_deleted_while_its_build_runs_leaves_nothing_behind(
    build_server: BuildServer, silent_registry: SilentRegistry
) -> None:
    s = build_server
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))
    build = await s.create("myapp", archive(hanging_source(silent_registry)))
    stream = s.builds.BuildLogs(bpb.BuildLogsRequest(app="myapp", id=build.id, follow=True))
    while (await stream.read()).line.seq < 3:
        pass
    await s.releases.DeleteApp(pb.DeleteAppRequest(name="myapp"))
    silent_registry.close()  # the build ends (failed), with nothing left to record it on
    wait_for(lambda: not list((s.data_dir / "builds").iterdir()), what="its directory removed")
    await asyncio.sleep(0.5)  # the runner's last writes change nothing
    assert (s.rows("builds"), s.rows("build_logs"), s.rows("releases")) == (0, 0, 0)
    await s.releases.CreateApp(pb.CreateAppRequest(name="myapp"))  # and the runner goes on
    again = await s.finished("myapp", (await s.create("myapp", archive(app_source()))).id)
    assert again.status == pb.BUILD_STATUS_COMPLETE
