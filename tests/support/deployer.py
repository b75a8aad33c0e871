"""Small helpers the Deployer's tests share: making apps and releases, reading streams, and
deployments and events made up for the store and the in-memory event log."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from relman.v1 import deployer_pb2, release_pb2, release_pb2_grpc
from relman_common.lifecycle import ReleaseStatus
from relman_common.pb_enums import word
from relman_deployer.backends.base import AppSpec, Observation, ReleaseJob, ReleaseOutput
from relman_deployer.backends.sim import SimBackend
from relman_deployer.domain.model import Deployment, DeploymentEvent

ACTOR = (("x-relman-actor", "alice"),)
EVENT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ system/k8s/\S+ .+$")
# A made-up start time and lease TTL for deployments made by :func:`deployment`.
T0 = datetime(2030, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=15)


def manifest(replicas: int = 2, services: tuple[str, ...] = ("web",)) -> str:
    lines = ["services:"]
    for name in services:
        lines += [
            f"  {name}:",
            "    build: .",
            "    port: 5000",
            f"    scale: {{count: {replicas}}}",
        ]
    return "\n".join(lines) + "\n"


async def new_app(
    release: release_pb2_grpc.ReleaseServiceStub,
    app: str,
    replicas: int = 2,
    services: tuple[str, ...] = ("web",),
) -> str:
    """Create ``app`` with one imported build; the id of its first release."""
    await release.CreateApp(release_pb2.CreateAppRequest(name=app), metadata=ACTOR)
    return await new_build(release, app, replicas, services)


async def new_build(
    release: release_pb2_grpc.ReleaseServiceStub,
    app: str,
    replicas: int = 2,
    services: tuple[str, ...] = ("web",),
) -> str:
    resp = await release.ImportBuild(
        release_pb2.ImportBuildRequest(
            app=app,
            manifest=manifest(replicas, services),
            images={s: f"registry.example/{app}:{s}.{replicas}" for s in services},
            description=f"build {replicas}",
        ),
        metadata=ACTOR,
    )
    return str(resp.release.id)


async def set_env(release: release_pb2_grpc.ReleaseServiceStub, app: str, **env: str) -> str:
    resp = await release.ChangeEnv(release_pb2.ChangeEnvRequest(app=app, set=env), metadata=ACTOR)
    return str(resp.release.id)


async def release_status(release: release_pb2_grpc.ReleaseServiceStub, app: str) -> dict[str, str]:
    """``{release id: the STATUS word}`` ("" when there is nothing to say)."""
    resp = await release.ListReleases(release_pb2.ListReleasesRequest(app=app, limit=100))
    return {r.id: word(ReleaseStatus, r.status) for r in resp.releases}


@dataclass
class Streamed:
    first: deployer_pb2.Deployment
    events: list[deployer_pb2.DeploymentEvent] = field(default_factory=list)
    last: deployer_pb2.Deployment | None = None

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self.events]

    @property
    def statuses(self) -> list[str]:
        return [e.message for e in self.events if e.reason == "StatusChange"]

    @property
    def seqs(self) -> list[int]:
        return [e.seq for e in self.events]


async def read_stream(
    stream: AsyncIterator[deployer_pb2.DeploymentUpdate],
    max_events: int | None = None,
    so_far: Streamed | None = None,
) -> Streamed:
    """Read a Promote/Rollback/Watch stream to its end (or ``max_events`` events).

    ``so_far``: what an earlier call read from the same stream; reading continues into it.
    """
    result = so_far
    async for update in stream:
        if update.HasField("deployment"):
            if result is None:
                result = Streamed(first=update.deployment)
            else:
                result.last = update.deployment
        else:
            assert result is not None, "an event came before the deployment"
            result.events.append(update.event)
            if max_events is not None and len(result.events) >= max_events:
                break
    assert result is not None, "the stream sent nothing"
    return result


async def eventually(
    condition: Callable[[], object], within: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``condition`` on the event loop until it is truthy, or fail after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


class RecordingSim:
    """The ``sim`` backend, keeping every AppSpec the Deployer applied (in order): what the
    Deployer made of the Release service's answer, exactly as a backend receives it."""

    name = "sim"

    def __init__(self, **options: Any) -> None:
        self.sim = SimBackend(**options)
        self.applied: list[AppSpec] = []

    async def apply(self, spec: AppSpec) -> None:
        self.applied.append(spec)
        await self.sim.apply(spec)

    def observe(self, app: str) -> AsyncIterator[Observation]:
        return self.sim.observe(app)

    def run_release_command(self, job: ReleaseJob) -> AsyncGenerator[ReleaseOutput, None]:
        return self.sim.run_release_command(job)

    async def pod_logs(self, app: str, pod: str, container: str, lines: int) -> list[str]:
        return await self.sim.pod_logs(app, pod, container, lines)

    async def close(self) -> None:
        await self.sim.close()


def deployment(
    n: int, app: str = "myapp", started: datetime = T0, actor: str = "alice"
) -> Deployment:
    """The ``n``-th made-up deployment (of ``app``; ids in order of ``n``)."""
    return Deployment(
        id="D" + chr(ord("A") + n // 26) + chr(ord("A") + n % 26) + "AAAAAAAA",
        app=app,
        release_id="RAAAAAAAAAA",
        previous_release_id="",
        actor=actor,
        started=started,
    )


def events(d: Deployment, seqs: range) -> list[DeploymentEvent]:
    """Made-up ``ScalingReplicaSet`` events of ``d``, one per seq, messages ``e<seq>``."""
    return [
        DeploymentEvent(d.id, s, T0, "system/k8s/web", "ScalingReplicaSet", f"e{s}") for s in seqs
    ]
