"""Wiring: database, backend, Release service client, orchestrator and servicer in one Service."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from relman.v1 import deployer_pb2, deployer_pb2_grpc  # type: ignore[import-not-found]
from relman_common.auth import CachedAuthenticator, Principal
from relman_common.db import DbExecutor, make_engine
from relman_common.errors import Unavailable
from relman_common.server import Service
from relman_common.settings import (
    AUTH,
    BACKEND,
    CRASHLOOP_THRESHOLD,
    DEFAULT_TIMEOUT,
    LEASE_TTL,
    RETRY_SECONDS,
    SCHEDULING_GRACE,
)
from relman_common.tls import ClientTls, ServerTls
from relman_common.token_client import remote_authenticator
from sqlalchemy import Engine

from relman_deployer.api.servicer import DeployerServicer
from relman_deployer.backends import get_backend
from relman_deployer.backends.base import Backend
from relman_deployer.credentials import TOKEN_WAIT_SECONDS, DeployerToken
from relman_deployer.orchestrator import DeployerConfig, Orchestrator, instance_id
from relman_deployer.release_client import ReleaseClient
from relman_deployer.store.repository import DeploymentStore, migrate

SERVICE_NAME = deployer_pb2.DESCRIPTOR.services_by_name["DeployerService"].full_name
DB_WORKERS = 8


@dataclass
class Settings:
    database_url: str
    release_addr: str
    backend: str = BACKEND.default
    backend_options: dict[str, Any] = field(default_factory=dict)
    lease_ttl: float = LEASE_TTL.default
    # How long calls to the Release service are retried while it is unavailable (reports
    # have a longer deadline of their own).
    retry_seconds: float = RETRY_SECONDS.default
    crashloop_threshold: int = CRASHLOOP_THRESHOLD.default
    scheduling_grace: float = SCHEDULING_GRACE.default
    default_timeout: int = DEFAULT_TIMEOUT.default
    owner: str = field(default_factory=instance_id)
    # Authentication: every call needs a user's token, verified by the Release service; the
    # Deployer calls it with its own service token (``token``, else read from ``token_file``).
    auth: bool = AUTH.default
    token_file: Path | None = None
    token: str = field(default="", repr=False)
    token_wait: float = TOKEN_WAIT_SECONDS
    # TLS served to clients, and TLS to reach the Release service.
    tls: ServerTls | None = None
    release_tls: ClientTls | None = None


class DeployerService(Service):
    """The Deployer on ``addr``. ``backend``, when given, is used instead of ``settings.backend``
    (tests drive the orchestrator with a backend they hold)."""

    # The end of a deployment waits for commits (its events, its outcome) made in database
    # threads while the event loop streams to every watcher: at Python's 5 ms the threads
    # waited for the GIL after each statement, and 200 concurrent promotes reached their
    # clients ~100 ms later than at 0.2 ms (measured with `make bench`, for ~10% less
    # throughput; the Release service, at 5 ms, spends less CPU per request).
    gil_switch_seconds = 0.0002

    def __init__(self, addr: str, settings: Settings, backend: Backend | None = None) -> None:
        super().__init__(
            addr,
            self._register,
            [SERVICE_NAME],
            on_stop=self._close,
            tls=settings.tls,
            authenticate=self._authenticate if settings.auth else None,
        )
        self.settings = settings
        self._authenticator: CachedAuthenticator | None = None
        self._backend = backend
        self.orchestrator: Orchestrator | None = None
        self._engine: Engine | None = None
        self._executor: DbExecutor | None = None
        self._releases: ReleaseClient | None = None

    async def start(self) -> None:
        s = self.settings
        self._executor = DbExecutor(workers=DB_WORKERS, name="deployer-db")
        self._engine = make_engine(s.database_url, pool_size=DB_WORKERS)
        await self._executor.run(migrate, self._engine)
        if self._backend is None:
            self._backend = get_backend(s.backend, **s.backend_options)
        token = DeployerToken(s.token_file, s.token, required=s.auth, wait=s.token_wait)
        self._releases = ReleaseClient(
            s.release_addr, tls=s.release_tls, token=token, retry_seconds=s.retry_seconds
        )
        self._authenticator = remote_authenticator(self._releases.channels)
        self.orchestrator = Orchestrator(
            DeploymentStore(self._engine, self._executor),
            self._backend,
            self._releases,
            DeployerConfig(
                owner=s.owner,
                lease_ttl=s.lease_ttl,
                crashloop_threshold=s.crashloop_threshold,
                scheduling_grace=s.scheduling_grace,
                default_timeout=s.default_timeout,
            ),
        )
        await self.orchestrator.start()
        await super().start()

    async def _authenticate(self, token: str | None) -> Principal:
        """A user's token, verified by the Release service (cached briefly)."""
        if self._authenticator is None:
            raise Unavailable("the Deployer is starting")
        return await self._authenticator(token)

    def _register(self, server: grpc.aio.Server) -> None:
        assert self.orchestrator is not None
        deployer_pb2_grpc.add_DeployerServiceServicer_to_server(
            DeployerServicer(self.orchestrator), server
        )

    async def _close(self) -> None:
        if self.orchestrator is not None:
            await self.orchestrator.stop()
        if self._backend is not None:
            await self._backend.close()
        if self._releases is not None:
            await self._releases.close()
        if self._executor is not None:
            self._executor.shutdown()
        if self.orchestrator is not None:
            self.orchestrator.store.close()
        if self._engine is not None:
            self._engine.dispose()
