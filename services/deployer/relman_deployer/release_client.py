"""The Deployer's client of the Release service: domain values in and out, project errors.

Callers never see gRPC: every failed call becomes a :mod:`relman_common.errors` error. The
writes that must land once a rollout is decided (MarkReleaseActive, RecordDeploymentOutcome)
are retried while the Release service is unavailable, up to a long deadline.

Writes are sent at most ``MAX_WRITES_IN_FLIGHT`` at a time: the Release service serializes its
writes anyway (one database write lock), and 200 deployments firing 600 writes at once only
made its threads queue on that lock while its reads (GetDeployable of new promotes) waited
behind them. Writes that decide when a client's stream ends (MarkReleaseActive, the final
outcome) go before the ``running`` outcome, which the rollout does not wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
from relman.v1 import release_pb2, release_pb2_grpc  # type: ignore[import-not-found]
from relman_common.auth import call_metadata
from relman_common.clock import as_utc
from relman_common.errors import Unauthenticated, Unavailable
from relman_common.grpc_errors import error_from_rpc
from relman_common.tls import ClientTls, aio_channel

from relman_deployer.credentials import DeployerToken
from relman_deployer.domain.model import Build, Deployable, Outcome, Release

log = logging.getLogger("relman.deployer.releases")

T = TypeVar("T")

CALL_TIMEOUT_SECONDS = 10.0
MAX_WRITES_IN_FLIGHT = 2
# The outcome written while the rollout goes on, awaited by no client's stream yet.
_BOOKKEEPING = (Outcome.RUNNING,)
# How long a decided outcome keeps being offered to an unavailable Release service.
RETRY_DEADLINE_SECONDS = 6 * 3600.0
MAX_BACKOFF_SECONDS = 5.0
# Reconnect soon after the Release service comes back (gRPC's default backoff grows to 120 s).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", int(MAX_BACKOFF_SECONDS * 1000)),
]


class WriteLimiter:
    """At most ``limit`` holders at once; waiting urgent callers are let in before the others.

    Fair within each class (first come, first served).
    """

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._other: deque[asyncio.Future[None]] = deque()

    @contextlib.asynccontextmanager
    async def slot(self, *, urgent: bool) -> AsyncIterator[None]:
        if self._free > 0 and not self._urgent and not self._other:
            self._free -= 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            (self._urgent if urgent else self._other).append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # granted just as the caller was cancelled: pass it on
                else:
                    (self._urgent if urgent else self._other).remove(waiter)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for waiters in (self._urgent, self._other):
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the slot passes straight to the waiter
                    return
        self._free += 1


class ReleaseClient:
    """Calls the Release service at ``addr`` (over TLS when ``tls`` is given) with the
    Deployer's service ``token`` and the user each call acts for (``x-relman-on-behalf-of``),
    so what the Release service writes records that user as its actor."""

    def __init__(
        self,
        addr: str,
        *,
        tls: ClientTls | None = None,
        token: DeployerToken | None = None,
        call_timeout: float = CALL_TIMEOUT_SECONDS,
        retry_deadline: float = RETRY_DEADLINE_SECONDS,
        max_writes_in_flight: int = MAX_WRITES_IN_FLIGHT,
    ) -> None:
        self.addr = addr
        self.channel = aio_channel(addr, tls, CHANNEL_OPTIONS)
        self._token = token or DeployerToken(None, required=False)
        self._stub = release_pb2_grpc.ReleaseServiceStub(self.channel)
        self._timeout = call_timeout
        self._retry_deadline = retry_deadline
        self._writes = WriteLimiter(max_writes_in_flight)

    async def close(self) -> None:
        await self.channel.close()

    async def get_deployable(
        self, app: str, release_id: str, actor: str, *, retry: bool = False
    ) -> Deployable:
        """The release (latest when ``release_id`` is empty), its build and the active release."""
        request = release_pb2.GetDeployableRequest(app=app, release_id=release_id)

        async def call() -> Deployable:
            resp = await self._call(self._stub.GetDeployable, request, actor)
            return Deployable(
                release=release_from_pb(resp.release),
                build=build_from_pb(resp.build) if resp.HasField("build") else None,
                active=(
                    release_from_pb(resp.active_release)
                    if resp.HasField("active_release") and resp.active_release.id
                    else None
                ),
            )

        if retry:
            return await self._retrying(f"GetDeployable {app} {release_id}", call)
        return await call()

    async def create_rollback_release(self, app: str, release_id: str, actor: str) -> Release:
        request = release_pb2.CreateRollbackReleaseRequest(app=app, release_id=release_id)
        async with self._writes.slot(urgent=True):
            resp = await self._call(self._stub.CreateRollbackRelease, request, actor)
        return release_from_pb(resp)

    async def mark_release_active(
        self, app: str, release_id: str, deployment_id: str, actor: str
    ) -> None:
        request = release_pb2.MarkReleaseActiveRequest(
            app=app, release_id=release_id, deployment_id=deployment_id
        )

        async def call() -> None:
            async with self._writes.slot(urgent=True):
                await self._call(self._stub.MarkReleaseActive, request, actor)

        await self._retrying(f"MarkReleaseActive {app} {release_id}", call)

    async def record_outcome(
        self,
        app: str,
        release_id: str,
        deployment_id: str,
        outcome: Outcome,
        actor: str,
        *,
        on_send: Callable[[], None] | None = None,
    ) -> None:
        """``on_send`` is called when the request is about to be sent (it waited its turn)."""
        request = release_pb2.RecordDeploymentOutcomeRequest(
            app=app, release_id=release_id, deployment_id=deployment_id, outcome=outcome.value
        )

        async def call() -> None:
            async with self._writes.slot(urgent=outcome not in _BOOKKEEPING):
                if on_send is not None:
                    on_send()
                await self._call(self._stub.RecordDeploymentOutcome, request, actor)

        await self._retrying(f"RecordDeploymentOutcome {release_id} {outcome.value}", call)

    async def _call(self, method: Callable[..., Awaitable[T]], request: object, actor: str) -> T:
        metadata = call_metadata(await self._token.get(), actor)
        try:
            return await method(request, timeout=self._timeout, metadata=metadata)
        except grpc.RpcError as err:
            error = error_from_rpc(err)
            if isinstance(error, Unauthenticated):
                # The Deployer's own credentials are wrong, not the user's: a Release service
                # on a new database made new tokens. Read the file again, and report it as
                # unavailable (retried where a write must land), never as the user's fault.
                self._token.forget()
                log.error("the Release service refused the Deployer's service token: %s", error)
                raise Unavailable(
                    f"the Release service refused the Deployer's service token ({error})"
                ) from None
            raise error from None

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self._retry_deadline
        delay = 0.1
        while True:
            try:
                return await call()
            except Unavailable as err:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s: release service unavailable (%s); retrying", what, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)


def release_from_pb(msg: release_pb2.Release) -> Release:
    return Release(
        id=msg.id,
        app=msg.app,
        build_id=msg.build_id,
        created=as_utc(msg.created.ToDatetime()),
        env=dict(msg.env),
        description=msg.description,
    )


def build_from_pb(msg: release_pb2.Build) -> Build:
    return Build(id=msg.id, manifest=msg.manifest, images=dict(msg.images))
