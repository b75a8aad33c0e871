"""The echo floor: a bare grpc.aio server speaking relman's own contract, doing no work.

It implements the RPCs the bench calls on the real services, so the *same client code* drives
both and the difference is what relman does between receiving a request and answering:

- ``ReleaseService.ChangeEnv`` / ``CreateRelease`` answer at once with a release built from the
  request (no validation, no storage);
- ``DeployerService.Watch`` streams ``after_seq`` events (the field is borrowed as the message
  count), framed like a real deployment stream: the Deployment first, then the events, then
  the Deployment again.
- ``Watch`` of ``fanout:<subscribers>:<t1>,<t2>,...`` is the fan-out floor: once that many
  watchers of the id are subscribed, events are produced at the offsets t1, t2, ... (ms from
  the start, e.g. the timeline of a real deployment) and put on every watcher's in-memory queue,
  stamped with the time they were produced.

No interceptors, no logging, no reflection; health only, so it can be waited for like a service.

Run: ``python -m bench.echo_server --addr 127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import grpc
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc

ECHO_RELEASE_ID = "RBENCHECHOO"
EVENT_SOURCE = "system/k8s/web-745f845dc-rzl2q"


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


class EchoRelease(release_pb2_grpc.ReleaseServiceServicer):  # type: ignore[misc]
    async def ChangeEnv(
        self, request: release_pb2.ChangeEnvRequest, context: grpc.aio.ServicerContext
    ) -> release_pb2.ChangeEnvResponse:
        description = "env " + " ".join(f"add:{k}" for k in sorted(request.set))
        release = release_pb2.Release(
            id=ECHO_RELEASE_ID,
            app=request.app,
            env=dict(request.set),
            description=description,
            created=_now(),
        )
        return release_pb2.ChangeEnvResponse(changed=True, release=release, description=description)

    async def CreateRelease(
        self, request: release_pb2.CreateReleaseRequest, context: grpc.aio.ServicerContext
    ) -> release_pb2.Release:
        return release_pb2.Release(
            id=ECHO_RELEASE_ID,
            app=request.app,
            build_id=request.build_id,
            env=dict(request.env),
            description=request.description,
            created=_now(),
        )


def _event(deployment_id: str, seq: int) -> deployer_pb2.DeploymentEvent:
    return deployer_pb2.DeploymentEvent(
        deployment_id=deployment_id,
        seq=seq,
        time=_now(),
        source=EVENT_SOURCE,
        reason="Started",
        message="Started container main",
    )


class Broadcast:
    """One fan-out: a queue per subscriber, events produced on a timeline once all are in."""

    def __init__(self, deployment_id: str) -> None:
        _, subscribers, timeline = deployment_id.split(":", 2)
        self.deployment_id = deployment_id
        self.subscribers = int(subscribers)
        self.offsets_s = [int(ms) / 1000 for ms in timeline.split(",") if ms]
        self.queues: list[asyncio.Queue[deployer_pb2.DeploymentEvent | None]] = []
        self.task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[deployer_pb2.DeploymentEvent | None]:
        queue: asyncio.Queue[deployer_pb2.DeploymentEvent | None] = asyncio.Queue()
        self.queues.append(queue)
        if len(self.queues) == self.subscribers:
            self.task = asyncio.create_task(self._produce())
        return queue

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for seq, offset in enumerate(self.offsets_s, start=1):
            delay = start + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the producer along the timeline
            event = _event(self.deployment_id, seq)
            for queue in self.queues:
                queue.put_nowait(event)
        for queue in self.queues:
            queue.put_nowait(None)


class EchoDeployer(deployer_pb2_grpc.DeployerServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.broadcasts: dict[str, Broadcast] = {}

    async def Watch(
        self, request: deployer_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        deployment = deployer_pb2.Deployment(
            id=request.deployment_id, app="echo", release_id=ECHO_RELEASE_ID, outcome="running"
        )
        if request.deployment_id.startswith("fanout:"):
            broadcast = self.broadcasts.get(request.deployment_id)
            if broadcast is None:
                broadcast = self.broadcasts[request.deployment_id] = Broadcast(
                    request.deployment_id
                )
            queue = broadcast.subscribe()
            yield deployer_pb2.DeploymentUpdate(deployment=deployment)
            while (item := await queue.get()) is not None:
                yield deployer_pb2.DeploymentUpdate(event=item)
            deployment.outcome = "succeeded"
            deployment.last_seq = len(broadcast.offsets_s)
            yield deployer_pb2.DeploymentUpdate(deployment=deployment)
            return
        count = int(request.after_seq)
        yield deployer_pb2.DeploymentUpdate(deployment=deployment)
        for seq in range(1, count + 1):
            yield deployer_pb2.DeploymentUpdate(event=_event(request.deployment_id, seq))
        deployment.outcome = "succeeded"
        deployment.last_seq = count
        yield deployer_pb2.DeploymentUpdate(deployment=deployment)


async def serve(addr: str) -> None:
    server = grpc.aio.server()
    # The echo servicers implement only what the bench calls; the rest stay UNIMPLEMENTED.
    release_pb2_grpc.add_ReleaseServiceServicer_to_server(
        EchoRelease(),  # type: ignore[abstract]
        server,
    )
    deployer_pb2_grpc.add_DeployerServiceServicer_to_server(
        EchoDeployer(),  # type: ignore[abstract]
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(addr) == 0:
        raise OSError(f"could not listen on {addr}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description="relman bench echo floor server")
    parser.add_argument("--addr", required=True)
    asyncio.run(serve(parser.parse_args().addr))


if __name__ == "__main__":
    main()
