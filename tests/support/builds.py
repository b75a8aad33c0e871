"""What the build tests share (tests/integration/release/builds, and the builds against a real
registry and dockerd in tests/e2e/containers): the real Release service with its Build service
(real gRPC on a loopback port, the real store on the database of ``db_url``, the local builder,
sources and images in a data dir of the test's own), source archives made by the test, and
exports and imports of builds.

The fixtures here (``build_limits``, ``build_server``, ``silent_registry``) are imported by the
conftest.py of the folders that use them."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import socket
import tarfile
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from relman.v1 import build_pb2 as bpb
from relman.v1 import build_pb2_grpc, release_pb2_grpc
from relman_common.secretbox import SecretBox
from relman_common.server import Service
from relman_common.vocabulary import MESSAGE_SIZE_OPTIONS
from relman_release.api.server import build_service
from relman_release.builds.archive import Limits
from relman_release.builds.workshop import BuildConfig
from relman_release.store.uow import SqlUnitOfWork, open_store
from sqlalchemy import text
from support.helpers import free_port

CHUNK = 1024 * 1024
MANIFEST = b"services:\n  web:\n    build: .\n    command: /app/run\n    port: 5000\n"
DOCKERFILE = b'FROM scratch\nCOPY . /app\nCMD ["/app/run"]\n'


def archive(entries: Mapping[str, bytes | tuple[str, str]]) -> bytes:
    """A gzip-compressed tar of ``entries`` in order: bytes are a file (mode 0755 when it
    starts with ``#!``), ``("dir", "")`` a directory, ``("symlink"|"hardlink", target)`` a
    link, ``("fifo"|"chardev", "")`` a special file."""
    kinds = {
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "fifo": tarfile.FIFOTYPE,
        "chardev": tarfile.CHRTYPE,
    }
    buffer = io.BytesIO()
    # gzip's header holds a time unless told otherwise: the same entries, the same bytes.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w") as tar,
    ):
        for name, value in entries.items():
            info = tarfile.TarInfo(name)
            if isinstance(value, bytes):
                info.size = len(value)
                info.mode = 0o755 if value.startswith(b"#!") else 0o644
                tar.addfile(info, io.BytesIO(value))
            else:
                info.type, info.linkname = kinds[value[0]], value[1]
                info.mode = 0o755
                tar.addfile(info)
    return buffer.getvalue()


def app_source(**extra: bytes | tuple[str, str]) -> dict[str, bytes | tuple[str, str]]:
    """The files of a tiny app built FROM scratch: a manifest, a Dockerfile, a script."""
    return {
        "convox.yml": MANIFEST,
        "Dockerfile": DOCKERFILE,
        "run": b"#!/bin/sh\necho hello\n",
        **extra,
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload_requests(
    app: str, data: bytes, *, chunk: int = CHUNK, sha: str = "", size: int = -1, cut: int = -1
) -> AsyncIterator[bpb.UploadSourceRequest]:
    """An upload of ``data`` (its header may lie about ``sha``/``size``); with ``cut``, only
    its first ``cut`` bytes."""
    header = bpb.UploadSourceHeader(
        app=app, sha256=sha or sha256(data), size=len(data) if size < 0 else size
    )
    yield bpb.UploadSourceRequest(header=header)
    end = len(data) if cut < 0 else cut
    for start in range(0, end, chunk):
        yield bpb.UploadSourceRequest(chunk=data[start : min(start + chunk, end)])


@dataclass
class BuildServer:
    addr: str
    releases: Any  # ReleaseServiceStub (aio)
    builds: Any  # BuildServiceStub (aio)
    uow: SqlUnitOfWork
    data_dir: Path
    service: Service
    channel: grpc.aio.Channel = field(repr=False)

    async def upload(self, app: str, data: bytes) -> bpb.SourceInfo:
        return await self.builds.UploadSource(upload_requests(app, data))

    async def create(self, app: str, data: bytes, **kw: Any) -> Any:
        """Uploads ``data`` and starts a build of it; the build (CREATED)."""
        await self.upload(app, data)
        request = bpb.CreateBuildRequest(app=app, source_sha256=sha256(data), **kw)
        return await self.builds.CreateBuild(request)

    async def updates(
        self, app: str, build_id: str, after: int = 0, follow: bool = True
    ) -> list[bpb.BuildUpdate]:
        request = bpb.BuildLogsRequest(app=app, id=build_id, after_seq=after, follow=follow)
        return [u async for u in self.builds.BuildLogs(request, timeout=60)]

    async def finished(self, app: str, build_id: str) -> Any:
        """The build once it ended (following its log)."""
        return (await self.updates(app, build_id))[-1].build

    def rows(self, table: str) -> int:
        with self.uow.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())

    def kept_sources(self) -> list[str]:
        """Every file under the source store: archives, their facts, temporary files."""
        root = self.data_dir / "sources"
        return sorted(p.name for p in root.rglob("*") if p.is_file())


def build_config(data_dir: Path, **kw: Any) -> BuildConfig:
    return BuildConfig(data_dir=data_dir, **kw)


@pytest.fixture
def build_limits() -> Limits:
    return Limits(max_bytes=64 * 1024 * 1024, max_entries=1000)


@contextlib.asynccontextmanager
async def serving(db_url: str, config: BuildConfig) -> AsyncIterator[BuildServer]:
    """The Release service with builds set up by ``config``, on ``db_url``."""
    uow = open_store(db_url, SecretBox(SecretBox.generate_key()))
    addr = f"127.0.0.1:{free_port()}"
    service = build_service(addr, uow, builds=config)
    await service.start()
    try:
        async with grpc.aio.insecure_channel(addr, options=MESSAGE_SIZE_OPTIONS) as channel:
            yield BuildServer(
                addr=addr,
                releases=release_pb2_grpc.ReleaseServiceStub(channel),
                builds=build_pb2_grpc.BuildServiceStub(channel),
                uow=uow,
                data_dir=config.data_dir,
                service=service,
                channel=channel,
            )
    finally:
        await service.stop(grace=1)


@pytest.fixture
async def build_server(
    db_url: str, tmp_path: Path, build_limits: Limits
) -> AsyncIterator[BuildServer]:
    config = build_config(tmp_path / "data", limits=build_limits, heartbeat_ttl=3.0)
    async with serving(db_url, config) as server:
        yield server


def chunks_of(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def joined(parts: Iterable[bytes]) -> bytes:
    return b"".join(parts)


class SilentRegistry:
    """A TCP server on loopback that accepts connections and never answers: a build whose
    ``FROM`` names an image on it waits (as on a registry that hangs) until :meth:`close`,
    then fails as the connection drops."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._listener.accept()
                self._accepted.append(conn)

    def close(self) -> None:
        self._listener.close()
        for conn in self._accepted:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.fixture
def silent_registry() -> Iterator[SilentRegistry]:
    registry = SilentRegistry()
    try:
        yield registry
    finally:
        registry.close()


def hanging_source(registry: SilentRegistry) -> dict[str, bytes | tuple[str, str]]:
    """An app whose build waits on ``registry`` for its base image."""
    dockerfile = f"FROM {registry.addr}/base:1\nCOPY run /app/run\n".encode()
    return app_source(Dockerfile=dockerfile)


async def export(s: BuildServer, app: str, build_id: str) -> bytes:
    """The archive ExportBuild sends for ``build_id``."""
    request = bpb.ExportBuildRequest(app=app, id=build_id)
    return b"".join([chunk.data async for chunk in s.builds.ExportBuild(request)])


async def import_requests(app: str, data: bytes) -> AsyncIterator[bpb.ImportBuildArchiveRequest]:
    """An ImportBuildArchive of ``data`` into ``app``, in chunks of 100 kB."""
    yield bpb.ImportBuildArchiveRequest(app=app)
    for chunk in chunks_of(data, 100_000):
        yield bpb.ImportBuildArchiveRequest(chunk=chunk)
