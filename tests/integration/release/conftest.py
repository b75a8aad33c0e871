"""Fixtures for the Release service's tests.

``release_server`` runs the real service (real store, real gRPC on a loopback port) inside the
test's event loop, on each database of ``db_url``; ``release_stub`` is its async stub. Tests that
need the service as a separate program use ``release_process`` (``python -m relman_release``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from relman.v1 import release_pb2_grpc
from relman_common.secretbox import SecretBox
from relman_common.vocabulary import MESSAGE_SIZE_OPTIONS
from relman_release.api.server import build_service
from relman_release.store.uow import SqlUnitOfWork, open_store
from sqlalchemy import text
from support.helpers import ServiceProcess, free_port

TABLES = ("apps", "builds", "releases")


def new_box() -> SecretBox:
    """A fresh random key for sealing envs at rest."""
    return SecretBox(SecretBox.generate_key())


@dataclass
class ReleaseServer:
    addr: str
    stub: release_pb2_grpc.ReleaseServiceStub
    uow: SqlUnitOfWork

    def counts(self) -> dict[str, int]:
        """Rows per table, to prove that a refused request wrote nothing."""
        with self.uow.engine.connect() as conn:
            return {
                t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in TABLES
            }

    def snapshot(self) -> list[tuple[object, ...]]:
        """Every row of every table, ordered: equal snapshots mean nothing changed."""
        rows: list[tuple[object, ...]] = []
        with self.uow.engine.connect() as conn:
            for table in TABLES:
                key = "id" if table == "apps" else "seq"
                rows += [
                    (table, *r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))
                ]
        return rows


@pytest.fixture
async def release_server(db_url: str) -> AsyncIterator[ReleaseServer]:
    uow = open_store(db_url, new_box())
    addr = f"127.0.0.1:{free_port()}"
    service = build_service(addr, uow)
    await service.start()
    try:
        # Messages of up to 16 MiB both ways, as every relman client allows.
        async with grpc.aio.insecure_channel(addr, options=MESSAGE_SIZE_OPTIONS) as channel:
            yield ReleaseServer(
                addr=addr, stub=release_pb2_grpc.ReleaseServiceStub(channel), uow=uow
            )
    finally:
        await service.stop(grace=1)


@pytest.fixture
async def release_stub(release_server: ReleaseServer) -> release_pb2_grpc.ReleaseServiceStub:
    return release_server.stub


@pytest.fixture
def release_process(tmp_path: Path) -> Iterator[ServiceProcess]:
    """``python -m relman_release`` on a free port with its state under ``tmp_path``."""
    addr = f"127.0.0.1:{free_port()}"
    proc = ServiceProcess(
        "relman_release",
        ["--addr", addr, "--data-dir", str(tmp_path / "data")],
        env={"RELMAN_DATABASE_URL": ""},
        log_path=tmp_path / "release.log",
    )
    proc.start(addr)
    try:
        yield proc
    finally:
        proc.stop()
