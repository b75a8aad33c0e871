"""Fixtures for the Deployer's tests.

``stack`` runs the real Release service and the Deployer (real stores, real gRPC on loopback
ports, the real ``sim`` backend) inside the test's event loop, both on the database of
``db_url`` (they share it, as they may in production). Each test picks the Deployer's settings
(pod delay, lease TTL) with ``await stack.start_deployer(...)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from helpers import free_port
from relman.v1 import deployer_pb2_grpc, release_pb2_grpc
from relman_common.server import Service
from relman_deployer.api.server import DeployerService, Settings
from relman_deployer.orchestrator import Orchestrator
from relman_deployer.release_client import CHANNEL_OPTIONS
from relman_release.api.server import create_service


class Stack:
    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.release_addr = f"127.0.0.1:{free_port()}"
        self.release_service: Service | None = None
        self.deployers: list[DeployerService] = []
        self._channels: list[grpc.aio.Channel] = []
        self.release: release_pb2_grpc.ReleaseServiceStub = release_pb2_grpc.ReleaseServiceStub(
            self._channel(self.release_addr)
        )
        self.deployer: deployer_pb2_grpc.DeployerServiceStub | None = None

    def _channel(self, addr: str) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS)
        self._channels.append(channel)
        return channel

    async def start_release(self) -> None:
        self.release_service = create_service(self.release_addr, self.db_url)
        await self.release_service.start()

    async def stop_release(self) -> None:
        assert self.release_service is not None
        await self.release_service.stop(grace=0)
        self.release_service = None

    async def start_deployer(
        self, pod_delay: float = 0.02, **settings: Any
    ) -> deployer_pb2_grpc.DeployerServiceStub:
        """A Deployer instance (another one each call); its stub becomes ``self.deployer``."""
        addr = f"127.0.0.1:{free_port()}"
        options = {"lease_ttl": 2.0, **settings}
        service = DeployerService(
            addr,
            Settings(
                database_url=self.db_url,
                release_addr=self.release_addr,
                backend_options={"pod_delay": pod_delay},
                **options,
            ),
        )
        await service.start()
        self.deployers.append(service)
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


@pytest.fixture
async def stack(db_url: str) -> AsyncIterator[Stack]:
    s = Stack(db_url)
    await s.start_release()
    try:
        yield s
    finally:
        await s.close()
