"""The Deployer's client of the Release service: domain values in and out, project errors.

Callers never see gRPC: every failed call becomes a :mod:`relman_common.errors` error. A
promote makes three calls: GetDeployable (the release, its parsed services and the active
release's), then ReportDeployment twice (``running``, and the outcome); a rollback makes
CreateRollbackRelease instead of GetDeployable. Reports are idempotent, so they are retried
while the Release service is unavailable, up to a long deadline.

Writes are sent at most ``MAX_WRITES_IN_FLIGHT`` at a time: 200 deployments firing their writes
at once would only queue in the Release service (on SQLite it commits the writes that arrive
together in one transaction, so a few dozen in flight make full batches; on PostgreSQL each
takes a database connection). Writes that decide when a client's stream ends (the final
outcome, a rollback copy) go before the ``running`` reports, which the rollout does not wait
for, and of which only ``MAX_BACKGROUND_WRITES`` are in flight at once: under load most are
still waiting when their deployment's outcome replaces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from relman.v1 import release_pb2, release_pb2_grpc  # type: ignore[import-not-found]
from relman_common.auth import call_metadata
from relman_common.clock import as_utc
from relman_common.errors import Unauthenticated, Unavailable
from relman_common.grpc_errors import error_from_rpc
from relman_common.lifecycle import Outcome
from relman_common.locks import AppLock
from relman_common.manifest.proto import release_command_from_pb, services_from_pb
from relman_common.pb_enums import to_pb
from relman_common.request_ids import REQUEST_ID_METADATA, new_request_id
from relman_common.settings import RETRY_SECONDS
from relman_common.tls import ClientTls, aio_channel

from relman_deployer.credentials import DeployerToken
from relman_deployer.domain.model import Deployable, Deployment, Release

log = logging.getLogger("relman.deployer.releases")

T = TypeVar("T")

CALL_TIMEOUT_SECONDS = 10.0
MAX_WRITES_IN_FLIGHT = 32
# Of which ``running`` reports, which nobody waits for (and which an outcome ready before
# they were sent replaces).
MAX_BACKGROUND_WRITES = 2
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
    """At most ``limit`` holders at once, of which at most ``background`` (default: all) are
    not urgent; waiting urgent callers are let in before the others.

    Fair within each class (first come, first served).
    """

    def __init__(self, limit: int, background: int | None = None) -> None:
        self._free = limit
        self._background_free = limit if background is None else min(background, limit)
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._other: deque[asyncio.Future[None]] = deque()

    @contextlib.asynccontextmanager
    async def slot(self, *, urgent: bool) -> AsyncIterator[None]:
        if self._free > 0 and not self._urgent and (urgent or self._may_admit_other()):
            self._take(urgent)
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            (self._urgent if urgent else self._other).append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release(urgent)  # granted just as the caller was cancelled: pass it on
                else:
                    (self._urgent if urgent else self._other).remove(waiter)
                raise
        try:
            yield
        finally:
            self._release(urgent)

    def _may_admit_other(self) -> bool:
        return self._background_free > 0 and not self._other

    def _take(self, urgent: bool) -> None:
        self._free -= 1
        if not urgent:
            self._background_free -= 1

    def _release(self, urgent: bool) -> None:
        self._free += 1
        if not urgent:
            self._background_free += 1
        # Hand free slots straight to waiters: urgent ones first, the others within their cap.
        while self._free > 0:
            if self._urgent:
                waiters, waiter_urgent = self._urgent, True
            elif self._other and self._background_free > 0:
                waiters, waiter_urgent = self._other, False
            else:
                return
            waiter = waiters.popleft()
            if not waiter.done():
                self._take(waiter_urgent)
                waiter.set_result(None)


class ReleaseClient:
    """Calls the Release service at ``addr`` (over TLS when ``tls`` is given) with the
    Deployer's service ``token`` and the user each call acts for (``x-relman-on-behalf-of``),
    so what the Release service writes records that user as its actor.

    ``addr`` may list several addresses, comma-separated (replicas of the Release service on
    one database): calls go to one; a call answered UNAVAILABLE (or that cannot connect)
    moves on to the next and is retried with backoff, reads and rollback copies for up to
    ``retry_seconds`` (a copy carries a request id, so a retry never makes two), reports up
    to ``retry_deadline``."""

    def __init__(
        self,
        addr: str,
        *,
        tls: ClientTls | None = None,
        token: DeployerToken | None = None,
        call_timeout: float = CALL_TIMEOUT_SECONDS,
        retry_deadline: float = RETRY_DEADLINE_SECONDS,
        retry_seconds: float = RETRY_SECONDS.default,
        max_writes_in_flight: int = MAX_WRITES_IN_FLIGHT,
    ) -> None:
        self.addrs = [a.strip() for a in addr.split(",") if a.strip()] or [addr]
        self.addr = addr
        self.channels = [aio_channel(a, tls, CHANNEL_OPTIONS) for a in self.addrs]
        # Stubs on asyncio channels (their generated types are those of blocking ones).
        self._stubs: list[Any] = [release_pb2_grpc.ReleaseServiceStub(c) for c in self.channels]
        self._current = 0
        self._token = token or DeployerToken(None, required=False)
        self._timeout = call_timeout
        self._retry_deadline = retry_deadline
        self._retry_seconds = retry_seconds
        self._writes = WriteLimiter(max_writes_in_flight, MAX_BACKGROUND_WRITES)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel calls go to now."""
        return self.channels[self._current % len(self.channels)]

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def get_deployable(
        self, app: str, release_id: str, actor: str, *, retry: bool = False
    ) -> Deployable:
        """The release (latest when ``release_id`` is empty) with its services, and the
        active release with its services. Retried while the Release service is unavailable
        for ``retry_seconds`` (with ``retry``, for a resumed deployment, up to the long
        deadline of reports)."""
        request = release_pb2.GetDeployableRequest(app=app, release_id=release_id)

        async def call() -> Deployable:
            return deployable_from_pb(
                await self._call(lambda stub: stub.GetDeployable, request, actor)
            )

        deadline = self._retry_deadline if retry else self._retry_seconds
        return await self._retrying(f"GetDeployable {app} {release_id}", call, deadline)

    async def create_rollback_release(
        self, app: str, release_id: str, actor: str, request_id: str = "", *, force: bool = False
    ) -> Deployable:
        """A copy of an old release ("rollback to R"), ready to deploy; made once per
        ``request_id`` (a repeated id gets the first copy back; one is made up when none is
        given, so that this call's own retries are safe). Refused when the app is locked,
        unless ``force``."""
        request = release_pb2.CreateRollbackReleaseRequest(
            app=app, release_id=release_id, force=force
        )
        request_id = request_id or new_request_id()

        async def call() -> Deployable:
            async with self._writes.slot(urgent=True):
                resp = await self._call(
                    lambda stub: stub.CreateRollbackRelease, request, actor, request_id=request_id
                )
            return deployable_from_pb(resp)

        return await self._retrying(
            f"CreateRollbackRelease {app} {release_id}", call, self._retry_seconds
        )

    async def report(
        self,
        deployment: Deployment,
        outcome: Outcome,
        reason: str = "",
        *,
        on_send: Callable[[], None] | None = None,
    ) -> bool:
        """Tell the Release service how ``deployment`` stands (retried while it is down);
        whether it was the app's current deployment. ``on_send`` is called when the request
        is about to be sent (it waited its turn)."""
        request = release_pb2.ReportDeploymentRequest(
            deployment_id=deployment.id,
            app=deployment.app,
            release_id=deployment.release_id,
            outcome=to_pb(outcome),
            reason=reason,
            actor=deployment.actor,
        )
        request.started.FromDatetime(as_utc(deployment.started))

        async def call() -> bool:
            async with self._writes.slot(urgent=outcome.terminal):
                if on_send is not None:
                    on_send()
                resp = await self._call(
                    lambda stub: stub.ReportDeployment, request, deployment.actor
                )
            return bool(resp.current)

        return await self._retrying(
            f"ReportDeployment {deployment.id} {outcome.value}", call, self._retry_deadline
        )

    async def _call(
        self,
        method: Callable[[Any], Callable[..., Awaitable[T]]],
        request: object,
        actor: str,
        *,
        request_id: str = "",
    ) -> T:
        metadata = call_metadata(await self._token.get(), actor)
        if request_id:
            metadata = [*metadata, (REQUEST_ID_METADATA, request_id)]
        index = self._current
        try:
            return await method(self._stubs[index % len(self._stubs)])(
                request, timeout=self._timeout, metadata=metadata
            )
        except grpc.RpcError as err:
            error = error_from_rpc(err)
            if isinstance(error, Unavailable) and self._current == index:
                self._current += 1  # the next call (a retry) goes to the next address
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

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]], within: float) -> T:
        deadline = time.monotonic() + within
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


def deployable_from_pb(msg: release_pb2.Deployable) -> Deployable:
    active = (
        msg.active_release if msg.HasField("active_release") and msg.active_release.id else None
    )
    return Deployable(
        release=release_from_pb(msg.release),
        services=services_from_pb(msg.services),
        release_command=(
            release_command_from_pb(msg.release_command)
            if msg.HasField("release_command")
            else None
        ),
        active=release_from_pb(active) if active is not None else None,
        active_services=services_from_pb(msg.active_services) if active is not None else (),
        lock=lock_from_pb(msg.lock) if msg.HasField("lock") and msg.lock.locked_by else None,
    )


def lock_from_pb(msg: release_pb2.AppLock) -> AppLock:
    return AppLock(msg.locked_by, as_utc(msg.locked_at.ToDatetime()), msg.message)
