"""The Deployer's tests' stack of both services in the test's process (tests/integration/deployer,
and the kubernetes backend's tests in tests/e2e/kubernetes, whose conftest.py imports ``stack``).

``stack`` runs the real Release service and the Deployer (real stores, real gRPC on loopback
ports, the real ``sim`` backend) inside the test's event loop, both on the database of
``db_url`` (they share it, as they may in production). Each test picks the Deployer's settings
(pod delay, lease TTL) with ``await stack.start_deployer(...)``.

Authentication is on, as in production: the Release service makes its admin and deployer
tokens in the stack's data dir, the Deployer reads its service token from there, and the stack
holds user tokens for ``alice`` (the default) and ``bob``. The stubs' channels send the token
of the user a call names in ``x-relman-actor`` (alice when it names none), so a test acts as a
person by naming them; the actor the services record is then that token's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from relman.v1 import auth_pb2, auth_pb2_grpc, deployer_pb2_grpc, release_pb2_grpc
from relman_common import tokens
from relman_common.auth import ON_BEHALF_OF_METADATA, call_metadata
from relman_common.lifecycle import TokenKind
from relman_common.pb_enums import to_pb
from relman_common.server import Service
from relman_deployer.api.server import DeployerService, Settings
from relman_deployer.backends.base import Backend
from relman_deployer.orchestrator import Orchestrator
from relman_deployer.release_client import CHANNEL_OPTIONS
from relman_release.api.server import create_service
from support.helpers import aio_token_interceptors, free_port, read_token

USERS = ("alice", "bob")
DEFAULT_USER = "alice"
RELEASE_SERVICE = "/relman.v1.ReleaseService/"


@dataclass
class ReleaseCalls(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts the calls the Release service receives from Deployers: ReleaseService calls made
    for a person (``x-relman-on-behalf-of``, which only a service token may send). The
    test's own calls, and the Deployer's token checks, are not counted."""

    methods: list[str] = field(default_factory=list)

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        metadata = dict(details.invocation_metadata or ())
        if details.method.startswith(RELEASE_SERVICE) and ON_BEHALF_OF_METADATA in metadata:
            self.methods.append(details.method.removeprefix(RELEASE_SERVICE))
        return await continuation(details)

    def mark(self) -> int:
        """Where the calls made from now on start (for :meth:`since`)."""
        return len(self.methods)

    def since(self, mark: int) -> list[str]:
        return self.methods[mark:]


class Stack:
    def __init__(self, db_url: str, data_dir: Path) -> None:
        self.db_url = db_url
        self.data_dir = data_dir
        self.admin_token = ""
        self.user_tokens: dict[str, str] = {}
        self.release_addr = f"127.0.0.1:{free_port()}"
        self.release_service: Service | None = None
        self.deployers: list[DeployerService] = []
        self._channels: list[grpc.aio.Channel] = []
        self.release: release_pb2_grpc.ReleaseServiceStub = release_pb2_grpc.ReleaseServiceStub(
            self._channel(self.release_addr)
        )
        self.deployer: deployer_pb2_grpc.DeployerServiceStub | None = None
        self.deployer_addr = ""
        # The Deployers' calls to the Release service, as it received them.
        self.release_calls = ReleaseCalls()

    def token_for(self, metadata: Sequence[tuple[str, Any]]) -> str:
        """The token of the user a call names in ``x-relman-actor`` (alice by default)."""
        named = [v for k, v in metadata if k == "x-relman-actor"]
        return self.user_tokens.get(named[0] if named else DEFAULT_USER, "")

    def _channel(self, addr: str) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(
            addr, options=CHANNEL_OPTIONS, interceptors=aio_token_interceptors(self.token_for)
        )
        self._channels.append(channel)
        return channel

    async def start_release(self) -> None:
        self.release_service = create_service(
            self.release_addr, self.db_url, data_dir=self.data_dir, auth=True, announce=_quiet
        )
        # Counted before authentication, as the calls arrive.
        self.release_service._interceptors.insert(0, self.release_calls)
        await self.release_service.start()
        if not self.admin_token:
            self.admin_token = read_token(self.data_dir)
            for name in USERS:
                self.user_tokens[name] = await self.create_token(name)

    async def create_token(self, name: str, kind: TokenKind = TokenKind.USER) -> str:
        """A new token made by the admin; its secret."""
        async with grpc.aio.insecure_channel(self.release_addr) as channel:
            created = await auth_pb2_grpc.TokenServiceStub(channel).CreateToken(
                auth_pb2.CreateTokenRequest(name=name, kind=to_pb(kind)),
                metadata=call_metadata(self.admin_token),
            )
        return str(created.secret)

    async def revoke_token(self, name: str) -> None:
        async with grpc.aio.insecure_channel(self.release_addr) as channel:
            await auth_pb2_grpc.TokenServiceStub(channel).RevokeToken(
                auth_pb2.RevokeTokenRequest(name=name), metadata=call_metadata(self.admin_token)
            )

    async def stop_release(self) -> None:
        assert self.release_service is not None
        await self.release_service.stop(grace=0)
        self.release_service = None

    async def start_deployer(
        self, pod_delay: float = 0.02, backend: Backend | None = None, **settings: Any
    ) -> deployer_pb2_grpc.DeployerServiceStub:
        """A Deployer instance (another one each call); its stub becomes ``self.deployer``.

        ``backend``: one the test holds (default: a new ``sim`` with ``pod_delay``)."""
        addr = f"127.0.0.1:{free_port()}"
        options = {
            "lease_ttl": 2.0,
            "auth": True,
            "token_file": self.data_dir / tokens.DEPLOYER_TOKEN_FILE,
            **settings,
        }
        service = DeployerService(
            addr,
            Settings(
                database_url=self.db_url,
                release_addr=self.release_addr,
                backend_options={"pod_delay": pod_delay},
                **options,
            ),
            backend=backend,
        )
        await service.start()
        self.deployers.append(service)
        self.deployer_addr = addr
        self.deployer = deployer_pb2_grpc.DeployerServiceStub(self._channel(addr))
        return self.deployer

    @property
    def orchestrator(self) -> Orchestrator:
        orchestrator = self.deployers[-1].orchestrator
        assert orchestrator is not None
        return orchestrator

    async def close(self) -> None:
        for service in self.deployers:
            await service.stop(grace=0)
        if self.release_service is not None:
            await self.release_service.stop(grace=0)
        for channel in self._channels:
            await channel.close()


def _quiet(_message: str) -> None:
    """The Release service's first-start announcement, not needed here."""


@pytest.fixture
async def stack(db_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(db_url, tmp_path / "release")
    await s.start_release()
    try:
        yield s
    finally:
        await s.close()
