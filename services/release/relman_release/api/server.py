"""Wiring: a unit of work, a DB thread pool and the servicer in a relman_common Service."""

from __future__ import annotations

import grpc
from relman.v1 import release_pb2, release_pb2_grpc  # type: ignore[import-not-found]
from relman_common.db import DbExecutor
from relman_common.server import Service

from relman_release.api.servicer import ReleaseServicer
from relman_release.store.uow import SqlUnitOfWork, open_store

SERVICE_NAME = release_pb2.DESCRIPTOR.services_by_name["ReleaseService"].full_name
DB_WORKERS = 8


def build_service(addr: str, uow: SqlUnitOfWork, workers: int = DB_WORKERS) -> Service:
    """The Release service on ``addr`` over ``uow``; stopping it releases the pool and engine."""
    executor = DbExecutor(workers=workers, name="release-db")
    servicer = ReleaseServicer(uow, executor)

    def register(server: grpc.aio.Server) -> None:
        release_pb2_grpc.add_ReleaseServiceServicer_to_server(servicer, server)

    async def on_stop() -> None:
        executor.shutdown()
        uow.engine.dispose()

    return Service(addr, register, [SERVICE_NAME], on_stop=on_stop)


def create_service(addr: str, database_url: str) -> Service:
    """Opens (and migrates) the database at ``database_url`` and wires the service."""
    uow = open_store(database_url, pool_size=DB_WORKERS)
    return build_service(addr, uow)
