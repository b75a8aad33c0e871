"""Both services inside the test's process: the Release service (with its TokenService) and the
Deployer, real stores, real gRPC on loopback ports, authentication on, the sim backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relman_common import tokens
from relman_common.db import make_engine
from relman_common.secretbox import SecretBox
from relman_common.server import Service
from relman_deployer.api.server import DeployerService, Settings
from relman_release.api.server import bootstrap_token_files, build_service
from relman_release.store.uow import SqlUnitOfWork, open_store
from sqlalchemy import Engine, text
from support.helpers import free_port

RELEASE_TABLES = ("apps", "builds", "releases", "api_tokens")
DEPLOYER_TABLES = ("deployments", "deployment_events", "deploy_leases")


class World:
    """Start with ``await World(db_url, data_dir).start()``; ``await world.stop()``."""

    def __init__(self, db_url: str, data_dir: Path, pod_delay: float = 0.02) -> None:
        self.db_url = db_url
        self.data_dir = data_dir
        self.pod_delay = pod_delay
        self.release_addr = f"127.0.0.1:{free_port()}"
        self.deployer_addr = f"127.0.0.1:{free_port()}"
        self.uow: SqlUnitOfWork | None = None
        self.release_service: Service | None = None
        self.deployer_service: DeployerService | None = None
        self.admin = ""
        self.deployer_token = ""
        self._engine: Engine | None = None

    async def start(self) -> World:
        self.uow = open_store(self.db_url, SecretBox(SecretBox.generate_key()))
        bootstrap_token_files(self.uow, self.data_dir)
        self.admin = tokens.read_token_file(self.data_dir / tokens.ADMIN_TOKEN_FILE)
        self.deployer_token = tokens.read_token_file(self.data_dir / tokens.DEPLOYER_TOKEN_FILE)
        self.release_service = build_service(self.release_addr, self.uow, auth=True)
        await self.release_service.start()
        self.deployer_service = DeployerService(
            self.deployer_addr,
            Settings(
                database_url=self.db_url,
                release_addr=self.release_addr,
                backend_options={"pod_delay": self.pod_delay},
                lease_ttl=2.0,
                auth=True,
                token=self.deployer_token,
            ),
        )
        await self.deployer_service.start()
        return self

    async def stop(self) -> None:
        if self.deployer_service is not None:
            await self.deployer_service.stop(grace=0)
        if self.release_service is not None:
            await self.release_service.stop(grace=0)
        if self._engine is not None:
            self._engine.dispose()

    @property
    def engine(self) -> Engine:
        """The test's own connection to the database both services use."""
        if self._engine is None:
            self._engine = make_engine(self.db_url, pool_size=1)
        return self._engine

    def snapshot(self, tables: tuple[str, ...] = RELEASE_TABLES + DEPLOYER_TABLES) -> list[Any]:
        """Every row of ``tables`` in a stable order: equal snapshots mean nothing was written."""
        with self.engine.connect() as conn:
            return [
                (table, sorted(map(repr, conn.execute(text(f"SELECT * FROM {table}")))))
                for table in tables
            ]

    def settled(self) -> bool:
        """No deployment is running and no lease is held: nothing writes in the background."""
        with self.engine.connect() as conn:
            running = conn.execute(
                text("SELECT count(*) FROM deployments WHERE outcome = 'running'")
            ).scalar_one()
            leases = conn.execute(text("SELECT count(*) FROM deploy_leases")).scalar_one()
        return running == 0 and leases == 0

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
