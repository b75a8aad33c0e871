"""The echo floor: a bare grpc.aio server speaking relman's own contract, doing no work.

It implements the RPCs the bench calls on the real services, so the *same client code* drives
both and the difference is what relman does between receiving a request and answering:

- ``ReleaseService.ChangeEnv`` / ``CreateRelease`` answer at once with a release built from the
  request (no validation, no storage);
- ``ReleaseService.ListReleases`` answers a page of ``limit`` releases shaped like relman's
  listing (ids, build, description, time, actor, status; no env), made up, read from nothing;
- with ``--pg-url``, ``ChangeEnv`` instead does the durable PostgreSQL write transaction an env
  change needs, with the fewest statements: lock the app's row, read its latest release's env,
  insert the new release, point the app at it, commit (8 threads with a connection each).
  That is the floor of "unary call + durable write transaction" of the same shape;
- ``DeployerService.Watch`` streams ``after_seq`` events (the field is borrowed as the message
  count), framed like a real deployment stream: the Deployment first, then the events, then
  the Deployment again.
- ``Watch`` of ``fanout:<subscribers>:<t1>,<t2>,...`` is the fan-out floor: from the moment the
  first watcher of the id subscribes, events are produced at the offsets t1, t2, ... (ms, e.g.
  the timeline of a real deployment), stamped with the time they were produced and put on
  every subscribed watcher's in-memory queue; a watcher that subscribes later first gets the
  events produced so far (a replay, as relman's hub gives a late watcher), then the live ones.
  That is how relman's watchers meet its deployment: it runs while they connect.
  ``fanout-all:...`` waits until all ``<subscribers>`` are subscribed before producing the
  first event (no watcher connects while events flow: a floor of the fan-out alone).
- ``BuildService.UploadSource`` reads the client stream to its end and answers with the byte
  count: the floor of an upload with the same chunks.

No interceptors, no logging, no reflection; health only, so it can be waited for like a service.

Run: ``python -m bench.echo_server --addr 127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias

import grpc
import psycopg
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from relman.v1 import (
    build_pb2,
    build_pb2_grpc,
    deployer_pb2,
    deployer_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
    types_pb2,
)

ECHO_RELEASE_ID = "RBENCHECHOO"
EVENT_SOURCE = "system/k8s/web-745f845dc-rzl2q"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


LISTED_RELEASE = release_pb2.Release(
    id=ECHO_RELEASE_ID,
    app="echo",
    build_id="BBENCHECHOO",
    description="env change:BENCH_COUNTER #12345",
    actor="bench",
    last_deployment_id="DBENCHECHOO",
    last_deployment_outcome=types_pb2.OUTCOME_SUCCEEDED,
    status=release_pb2.RELEASE_STATUS_ACTIVE,
)

PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS echo_apps (id BIGSERIAL PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
    " latest_release_id TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS echo_releases (seq BIGSERIAL PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
    " app_id BIGINT NOT NULL REFERENCES echo_apps(id), env TEXT NOT NULL,"
    " description TEXT NOT NULL, created TIMESTAMPTZ NOT NULL)",
)
PG_ADD_APP = "INSERT INTO echo_apps (name) VALUES (%s) ON CONFLICT DO NOTHING"
PG_LOCK_APP = "SELECT id, latest_release_id FROM echo_apps WHERE name = %s FOR UPDATE"
PG_LATEST_ENV = "SELECT env FROM echo_releases WHERE id = %s"
PG_INSERT = (
    "INSERT INTO echo_releases (id, app_id, env, description, created)"
    " VALUES (%s, %s, %s, %s, now())"
)
PG_SET_LATEST = "UPDATE echo_apps SET latest_release_id = %s WHERE id = %s"


class PgEnvStore:
    """The floor's env change: one durable write transaction per call, on ``size`` threads
    with a connection each (psycopg in threads beat psycopg's asyncio connections here)."""

    def __init__(self, url: str, size: int = 8) -> None:
        self.url = url
        self.size = size
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="echo-pg")
        self.local = threading.local()
        self.known_apps: set[str] = set()

    async def open(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for statement in PG_SCHEMA:
                conn.execute(statement)

    def _conn(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn: psycopg.Connection[tuple[Any, ...]] | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = psycopg.connect(self.url)
        return conn

    async def change_env(self, app: str, changes: dict[str, str]) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._change_env, app, changes)

    def _change_env(self, app: str, changes: dict[str, str]) -> dict[str, str]:
        conn = self._conn()
        if app not in self.known_apps:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO echo_apps (name) VALUES (%s) ON CONFLICT DO NOTHING", (app,)
                )
            self.known_apps.add(app)
        with conn.transaction():
            app_id, latest = conn.execute(PG_LOCK_APP, (app,)).fetchone() or (None, "")
            env: dict[str, str] = {}
            if latest:
                row = conn.execute(PG_LATEST_ENV, (latest,)).fetchone()
                env = json.loads(str(row[0])) if row else {}
            env.update(changes)
            release_id = "R" + secrets.token_hex(5).upper()
            description = "env " + " ".join(f"add:{k}" for k in sorted(changes))
            conn.execute(
                PG_INSERT, (release_id, app_id, json.dumps(env, sort_keys=True), description)
            )
            conn.execute(PG_SET_LATEST, (release_id, app_id))
        return env


class EchoRelease(release_pb2_grpc.ReleaseServiceServicer):  # type: ignore[misc]
    def __init__(self, pg: PgEnvStore | None = None) -> None:
        self.pg = pg

    async def ChangeEnv(
        self, request: release_pb2.ChangeEnvRequest, context: Context
    ) -> release_pb2.ChangeEnvResponse:
        description = "env " + " ".join(f"add:{k}" for k in sorted(request.set))
        env = dict(request.set)
        if self.pg is not None:
            env = await self.pg.change_env(request.app, env)
        release = release_pb2.Release(
            id=ECHO_RELEASE_ID,
            app=request.app,
            env=env,
            description=description,
            created=_now(),
        )
        return release_pb2.ChangeEnvResponse(changed=True, release=release, description=description)

    async def ListReleases(
        self, request: release_pb2.ListReleasesRequest, context: Context
    ) -> release_pb2.ListReleasesResponse:
        created = _now()
        page = []
        for _ in range(request.limit or 10):
            release = release_pb2.Release()
            release.CopyFrom(LISTED_RELEASE)
            release.app = request.app
            release.created.CopyFrom(created)
            page.append(release)
        return release_pb2.ListReleasesResponse(releases=page, next_page_token="echo-next-page")

    async def CreateRelease(
        self, request: release_pb2.CreateReleaseRequest, context: Context
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
    """One fan-out: a queue per subscriber, events produced on a timeline that starts with the
    first subscriber (``fanout:``) or once all have subscribed (``fanout-all:``)."""

    def __init__(self, deployment_id: str) -> None:
        mode, subscribers, timeline = deployment_id.split(":", 2)
        self.deployment_id = deployment_id
        self.subscribers = int(subscribers)
        self.start_with_first = mode == "fanout"
        self.offsets_s = [int(ms) / 1000 for ms in timeline.split(",") if ms]
        self.produced: list[deployer_pb2.DeploymentEvent] = []
        self.done = False
        self.queues: list[asyncio.Queue[deployer_pb2.DeploymentEvent | None]] = []
        self.task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[deployer_pb2.DeploymentEvent | None]:
        queue: asyncio.Queue[deployer_pb2.DeploymentEvent | None] = asyncio.Queue()
        for event in self.produced:  # what a late subscriber missed: its replay
            queue.put_nowait(event)
        if self.done:
            queue.put_nowait(None)
        self.queues.append(queue)
        wanted = 1 if self.start_with_first else self.subscribers
        if self.task is None and len(self.queues) >= wanted:
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
            self.produced.append(event)
            for queue in self.queues:
                queue.put_nowait(event)
        self.done = True
        for queue in self.queues:
            queue.put_nowait(None)


class EchoDeployer(deployer_pb2_grpc.DeployerServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.broadcasts: dict[str, Broadcast] = {}

    async def Watch(
        self, request: deployer_pb2.WatchRequest, context: Context
    ) -> AsyncIterator[deployer_pb2.DeploymentUpdate]:
        deployment = deployer_pb2.Deployment(
            id=request.deployment_id,
            app="echo",
            release_id=ECHO_RELEASE_ID,
            outcome=types_pb2.OUTCOME_RUNNING,
        )
        if request.deployment_id.startswith(("fanout:", "fanout-all:")):
            broadcast = self.broadcasts.get(request.deployment_id)
            if broadcast is None:
                broadcast = self.broadcasts[request.deployment_id] = Broadcast(
                    request.deployment_id
                )
            queue = broadcast.subscribe()
            yield deployer_pb2.DeploymentUpdate(deployment=deployment)
            while (item := await queue.get()) is not None:
                yield deployer_pb2.DeploymentUpdate(event=item)
            deployment.outcome = types_pb2.OUTCOME_SUCCEEDED
            deployment.last_seq = len(broadcast.offsets_s)
            yield deployer_pb2.DeploymentUpdate(deployment=deployment)
            return
        count = int(request.after_seq)
        yield deployer_pb2.DeploymentUpdate(deployment=deployment)
        for seq in range(1, count + 1):
            yield deployer_pb2.DeploymentUpdate(event=_event(request.deployment_id, seq))
        deployment.outcome = types_pb2.OUTCOME_SUCCEEDED
        deployment.last_seq = count
        yield deployer_pb2.DeploymentUpdate(deployment=deployment)


class EchoBuilds(build_pb2_grpc.BuildServiceServicer):  # type: ignore[misc]
    """``UploadSource`` reads the whole client stream and answers with its byte count: the
    floor of a client-streaming upload with the same chunks (nothing hashed, stored or
    checked)."""

    async def UploadSource(
        self, requests: AsyncIterator[build_pb2.UploadSourceRequest], context: Context
    ) -> build_pb2.SourceInfo:
        header, size = None, 0
        async for request in requests:
            if header is None:
                header = request.header
            size += len(request.chunk)
        return build_pb2.SourceInfo(sha256=header.sha256 if header else "", size=size)


async def serve(addr: str, pg_url: str = "") -> None:
    server = grpc.aio.server()
    pg = None
    if pg_url:
        pg = PgEnvStore(pg_url)
        await pg.open()
    # The echo servicers implement only what the bench calls; the rest stay UNIMPLEMENTED.
    release_pb2_grpc.add_ReleaseServiceServicer_to_server(
        EchoRelease(pg),  # type: ignore[abstract]
        server,
    )
    deployer_pb2_grpc.add_DeployerServiceServicer_to_server(
        EchoDeployer(),  # type: ignore[abstract]
        server,
    )
    build_pb2_grpc.add_BuildServiceServicer_to_server(
        EchoBuilds(),  # type: ignore[abstract]
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
    parser.add_argument("--pg-url", default="", help="ChangeEnv writes to this PostgreSQL")
    args = parser.parse_args()
    asyncio.run(serve(args.addr, args.pg_url))


if __name__ == "__main__":
    main()
