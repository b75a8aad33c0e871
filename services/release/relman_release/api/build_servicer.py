"""The BuildService servicer: uploads and exports stream between the call and a thread
(:mod:`relman_release.builds.streams`), builds go to the runner, logs are read from the
store and followed through the hub. File work runs on ``files``, database work on ``db``:
neither blocks the event loop. Errors are the interceptor's to map, as for every RPC."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator

from relman.v1 import build_pb2, build_pb2_grpc, release_pb2  # type: ignore[import-not-found]
from relman_common.actor import current_actor
from relman_common.db import DbExecutor
from relman_common.errors import InvalidArgument
from relman_common.grpc_errors import Context

from relman_release.api import converters as cv
from relman_release.app import build_runs, builds, sources
from relman_release.app.results import ImportedBuild
from relman_release.builds.runner import BuildRunner
from relman_release.builds.streams import consume, produce
from relman_release.builds.transfer import export_build, import_export
from relman_release.builds.workshop import Workshop
from relman_release.ports import UnitOfWork

MAX_CHUNK = 1024 * 1024
# Log lines read from the store at a time.
LOG_PAGE = 1000


async def _first(requests: AsyncIterator[object], part: str, what: str) -> object:
    """The first message of a client stream, which must set ``part``."""
    first = await anext(aiter(requests), None)
    if first is None or first.WhichOneof("part") != part:  # type: ignore[attr-defined]
        raise InvalidArgument(f"the first message of {what} must be its {part}", field=part)
    return getattr(first, part)


async def _chunks(requests: AsyncIterator[object]) -> AsyncIterator[bytes]:
    """The ``chunk`` of every further message (each at most 1 MiB)."""
    async for message in requests:
        if message.WhichOneof("part") != "chunk":  # type: ignore[attr-defined]
            raise InvalidArgument("after the first message, a stream sends only chunks")
        chunk: bytes = message.chunk  # type: ignore[attr-defined]
        if len(chunk) > MAX_CHUNK:
            raise InvalidArgument(
                f"a chunk of {len(chunk)} bytes: chunks are at most {MAX_CHUNK}", field="chunk"
            )
        yield chunk


class BuildServicer(build_pb2_grpc.BuildServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        uow: UnitOfWork,
        db: DbExecutor,
        files: DbExecutor,
        workshop: Workshop,
        runner: BuildRunner,
    ) -> None:
        self.uow = uow
        self.db = db
        self.files = files
        self.workshop = workshop
        self.runner = runner

    async def StatSource(
        self, request: build_pb2.StatSourceRequest, context: Context
    ) -> build_pb2.SourceInfo:
        info = await self.files.run(
            sources.stat_source, self.uow, self.workshop.sources, request.app, request.sha256
        )
        return cv.source_info_pb(info)

    async def UploadSource(
        self, requests: AsyncIterator[build_pb2.UploadSourceRequest], context: Context
    ) -> build_pb2.SourceInfo:
        header = await _first(requests, "header", "an upload")
        app, sha256, size = header.app, header.sha256, header.size  # type: ignore[attr-defined]
        store = self.workshop.sources
        held = await self.db.run(sources.begin_upload, self.uow, store, app, sha256, size)
        if held is None:
            put = functools.partial(store.put, sha256, size)
            held = await consume(_chunks(requests), put, self.files)
        return cv.source_info_pb(held)

    async def CreateBuild(
        self, request: build_pb2.CreateBuildRequest, context: Context
    ) -> release_pb2.Build:
        build = await self.files.run(
            build_runs.create_build,
            self.uow,
            self.workshop.sources,
            self.runner.id,
            request.app,
            request.source_sha256,
            request.manifest_path,
            request.description,
            request.git_sha,
            request.no_cache,
            current_actor(),
        )
        self.runner.submit(build.id)
        return cv.build_pb(build)

    async def BuildLogs(
        self, request: build_pb2.BuildLogsRequest, context: Context
    ) -> AsyncIterator[build_pb2.BuildUpdate]:
        if request.after_seq < 0:
            raise InvalidArgument(f"invalid after_seq {request.after_seq}", field="after_seq")
        build = await self.db.run(builds.get_build, self.uow, request.app, request.id)
        yield cv.build_update_pb(build)
        seq = request.after_seq
        hub = self.runner.hub
        while True:
            seen = hub.version(build.id)
            build, lines = await self.db.run(build_runs.read_log, self.uow, build.id, seq, LOG_PAGE)
            for line in lines:
                yield cv.build_update_pb(line)
                seq = line.seq
            if len(lines) == LOG_PAGE:
                continue
            if build.finished or not request.follow:
                break
            await hub.wait(build.id, seen)
        yield cv.build_update_pb(build)

    async def ExportBuild(
        self, request: build_pb2.ExportBuildRequest, context: Context
    ) -> AsyncIterator[build_pb2.ExportChunk]:
        build = await self.db.run(builds.get_build, self.uow, request.app, request.id)
        work = self.workshop
        write = functools.partial(export_build, build, work.images, work.work_dir)
        async for data in produce(write):
            yield build_pb2.ExportChunk(data=data)

    async def ImportBuildArchive(
        self, requests: AsyncIterator[build_pb2.ImportBuildArchiveRequest], context: Context
    ) -> release_pb2.ImportBuildResponse:
        app = str(await _first(requests, "app", "an import"))
        actor = current_actor()

        def work(chunks: Iterator[bytes]) -> ImportedBuild:
            return import_export(self.uow, self.workshop, app, chunks, actor)

        result = await consume(_chunks(requests), work, self.files)
        return cv.imported_build_pb(result)
