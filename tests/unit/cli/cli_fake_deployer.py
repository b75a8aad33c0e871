"""A scripted Deployer for CLI tests: a real gRPC aio servicer, with no cluster behind it.

The real Deployer is written elsewhere; this one implements the same generated
``DeployerServiceServicer`` so the CLI's stream handling (event lines, outcomes, reconnects
with ``Watch(after_seq)``, Ctrl-C) is tested over real loopback gRPC. Each deployment follows
a :class:`Script`: events written at once, an optional hold (the deployment stays running
until the test lets it go), a final outcome, and stream "drops" (an UNAVAILABLE abort the
first time a stream is about to send a given sequence number).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from relman.v1 import deployer_pb2, deployer_pb2_grpc, types_pb2

T0 = datetime(2019, 1, 1, 0, 0, 0, tzinfo=UTC)

RUNNING = types_pb2.OUTCOME_RUNNING

# The seed page's promotion, as (seconds after T0, source, reason, message).
SEED_PROMOTE = [
    (49, "system/k8s/atom/app", "StatusChange", "Status: Running => Pending"),
    (51, "system/k8s/web", "ScalingReplicaSet", "Scaled up replica set web-745f845dc to 1"),
    (51, "system/k8s/web-745f845dc", "SuccessfulCreate", "Created pod: web-745f845dc-rzl2q"),
    (
        51,
        "system/k8s/web-745f845dc-rzl2q",
        "Scheduled",
        "Successfully assigned convox-myapp/web-745f845dc-rzl2q to instance-0a1b2c3d4e5f",
    ),
    (
        51,
        "system/k8s/web-745f845dc-rzl2q",
        "Pulling",
        'Pulling image "registry.host/convox/myapp:web.BABCDEFGHI"',
    ),
    (53, "system/k8s/atom/app", "StatusChange", "Status: Pending => Updating"),
    (
        55,
        "system/k8s/web-745f845dc-rzl2q",
        "Pulled",
        'Successfully pulled image "registry.host/convox/myapp:web.BABCDEFGHI"',
    ),
    (56, "system/k8s/web-745f845dc-rzl2q", "Created", "Created container main"),
    (56, "system/k8s/web-745f845dc-rzl2q", "Started", "Started container main"),
]

SEED_PROMOTE_LINES = [
    f"2019-01-01T00:00:{sec:02d}Z {source} {message}" for sec, source, _, message in SEED_PROMOTE
]


@dataclass
class Script:
    events: list[tuple[int, str, str, str]] = field(default_factory=lambda: list(SEED_PROMOTE))
    outcome: types_pb2.Outcome.ValueType = types_pb2.OUTCOME_SUCCEEDED
    reason: str = ""
    # Written before the hold; the rest only once the test calls FakeDeployer.release_hold().
    hold_after: int | None = None
    # Sequence numbers at which the first stream about to send them aborts with UNAVAILABLE.
    drop_before: set[int] = field(default_factory=set)


@dataclass
class _Run:
    deployment: deployer_pb2.Deployment
    script: Script
    events: list[deployer_pb2.DeploymentEvent] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: set[int] = field(default_factory=set)


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


class FakeDeployer(deployer_pb2_grpc.DeployerServiceServicer):
    def __init__(self) -> None:
        self.scripts: dict[str, Script] = {}
        self.runs: dict[str, _Run] = {}
        self.order: list[str] = []
        self.actors: list[str] = []
        self.requests: list[object] = []
        self.watches: list[tuple[str, int]] = []
        self.sent: dict[str, int] = {}  # deployment id -> highest seq sent on any stream
        self._sent_changed = asyncio.Condition()
        self._started = asyncio.Condition()
        self._next = 0
        self.tasks: list[asyncio.Task[None]] = []

    # --- test controls -----------------------------------------------------------------

    def release_hold(self, deployment_id: str) -> None:
        self.runs[deployment_id].held.set()

    async def wait_sent(self, deployment_id: str, seq: int) -> None:
        async with self._sent_changed:
            await self._sent_changed.wait_for(lambda: self.sent.get(deployment_id, 0) >= seq)

    async def wait_started(self, count: int = 1) -> None:
        async with self._started:
            await self._started.wait_for(lambda: len(self.order) >= count)

    def only_run(self) -> _Run:
        assert len(self.order) == 1, self.order
        return self.runs[self.order[0]]

    # --- RPCs --------------------------------------------------------------------------

    async def Promote(
        self, request: deployer_pb2.PromoteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        self._note(request, context)
        if request.release_id == "RREFUSEDXXX":
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "can not promote an older release, try rollback",
            )
        release_id = request.release_id or "RLATESTXXXX"
        run = self._start(request.app, release_id, types_pb2.DEPLOYMENT_KIND_PROMOTE, "")
        async for update in self._stream(run, 0, context):
            yield update

    async def Rollback(
        self, request: deployer_pb2.RollbackRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        self._note(request, context)
        run = self._start(
            request.app, "RDEFGHIJKLM", types_pb2.DEPLOYMENT_KIND_ROLLBACK, request.release_id
        )
        async for update in self._stream(run, 0, context):
            yield update

    async def Watch(
        self, request: deployer_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        self._note(request, context)
        self.watches.append((request.deployment_id, request.after_seq))
        run = self.runs.get(request.deployment_id)
        if run is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"deployment not found: {request.deployment_id}"
            )
            return
        async for update in self._stream(run, request.after_seq, context):
            yield update

    async def Cancel(
        self, request: deployer_pb2.CancelRequest, context: grpc.aio.ServicerContext
    ) -> deployer_pb2.Deployment:
        self._note(request, context)
        for deployment_id in reversed(self.order):
            run = self.runs[deployment_id]
            if run.deployment.app == request.app and run.deployment.outcome == RUNNING:
                run.script.outcome = types_pb2.OUTCOME_CANCELLED
                run.script.reason = f"cancelled by {self.actors[-1]}"
                run.held.set()
                return run.deployment
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION, f"no deployment of {request.app} is running"
        )
        raise AssertionError("unreachable")

    async def GetDeployment(
        self, request: deployer_pb2.GetDeploymentRequest, context: grpc.aio.ServicerContext
    ) -> deployer_pb2.Deployment:
        self._note(request, context)
        run = self.runs.get(request.id)
        if run is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"deployment not found: {request.id}")
            raise AssertionError("unreachable")
        return run.deployment

    async def ListDeployments(
        self, request: deployer_pb2.ListDeploymentsRequest, context: grpc.aio.ServicerContext
    ) -> deployer_pb2.ListDeploymentsResponse:
        self._note(request, context)
        found = [
            self.runs[d].deployment
            for d in reversed(self.order)
            if self.runs[d].deployment.app == request.app
        ]
        return deployer_pb2.ListDeploymentsResponse(deployments=found[: request.limit or 10])

    # --- machinery ---------------------------------------------------------------------

    def _note(self, request: object, context: grpc.aio.ServicerContext) -> None:
        self.requests.append(request)
        metadata = dict(context.invocation_metadata() or ())
        self.actors.append(str(metadata.get("x-relman-actor", "")))

    def _start(
        self,
        app: str,
        release_id: str,
        kind: types_pb2.DeploymentKind.ValueType,
        rollback_of: str,
    ) -> _Run:
        self._next += 1
        deployment_id = "D" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[self._next % 26] * 10
        script = self.scripts.get(rollback_of or release_id, Script())
        run = _Run(
            deployer_pb2.Deployment(
                id=deployment_id,
                app=app,
                release_id=release_id,
                previous_release_id="RPREVIOUSXX",
                actor=self.actors[-1],
                started=_ts(T0),
                outcome=RUNNING,
                kind=kind,
                rollback_of=rollback_of,
            ),
            Script(
                events=list(script.events),
                outcome=script.outcome,
                reason=script.reason,
                hold_after=script.hold_after,
                drop_before=set(script.drop_before),
            ),
        )
        self.runs[deployment_id] = run
        self.order.append(deployment_id)
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self._write(run)))
        self.tasks.append(loop.create_task(self._announce_start()))
        return run

    async def _announce_start(self) -> None:
        async with self._started:
            self._started.notify_all()

    async def _write(self, run: _Run) -> None:
        for i, (sec, source, reason, message) in enumerate(run.script.events, start=1):
            if run.script.hold_after is not None and i == run.script.hold_after + 1:
                await run.held.wait()
            await self._append(run, sec, source, reason, message)
        if run.script.hold_after is not None and run.script.hold_after >= len(run.events):
            await run.held.wait()
        async with run.changed:
            end = deployer_pb2.Deployment()
            end.CopyFrom(run.deployment)
            end.outcome = run.script.outcome
            end.reason = run.script.reason
            end.ended.CopyFrom(_ts(T0.replace(minute=1)))
            run.deployment = end
            run.changed.notify_all()

    async def _append(self, run: _Run, sec: int, source: str, reason: str, message: str) -> None:
        async with run.changed:
            seq = len(run.events) + 1
            run.events.append(
                deployer_pb2.DeploymentEvent(
                    deployment_id=run.deployment.id,
                    seq=seq,
                    time=_ts(T0.replace(second=sec)),
                    source=source,
                    reason=reason,
                    message=message,
                )
            )
            run.deployment.last_seq = seq
            run.changed.notify_all()

    async def _stream(
        self, run: _Run, after_seq: int, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        yield deployer_pb2.DeploymentUpdate(deployment=run.deployment)
        sent = after_seq
        while True:
            async with run.changed:
                await run.changed.wait_for(
                    lambda sent=sent: len(run.events) > sent or run.deployment.outcome != RUNNING  # type: ignore[misc]
                )
                pending = run.events[sent:]
                finished = run.deployment.outcome != RUNNING
            for event in pending:
                if event.seq in run.script.drop_before and event.seq not in run.dropped:
                    run.dropped.add(event.seq)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset by peer")
                yield deployer_pb2.DeploymentUpdate(event=event)
                sent = event.seq
                async with self._sent_changed:
                    self.sent[run.deployment.id] = max(self.sent.get(run.deployment.id, 0), sent)
                    self._sent_changed.notify_all()
            if finished and sent >= len(run.events):
                yield deployer_pb2.DeploymentUpdate(deployment=run.deployment)
                return


async def start_server(servicer: FakeDeployer, port: int) -> grpc.aio.Server:
    server = grpc.aio.server()
    deployer_pb2_grpc.add_DeployerServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    assert bound == port, f"could not bind 127.0.0.1:{port}"
    await server.start()
    return server
