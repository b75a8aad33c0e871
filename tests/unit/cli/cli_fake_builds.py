"""A scripted BuildService for CLI tests: the generated servicer on a real loopback gRPC
server (threads, so tests can run the ``relman`` process with plain ``subprocess``).

It stands in where the real BuildService cannot be made to do something on cue: a log
stream that breaks at a given line. It keeps what the CLI asked (builds, log streams) so
tests can check it. Each build follows the :class:`Script`: its lines, then its end
(complete with a release, or failed with a reason).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from relman.v1 import build_pb2, build_pb2_grpc, release_pb2, release_pb2_grpc

RUNNING = release_pb2.BUILD_STATUS_RUNNING
COMPLETE = release_pb2.BUILD_STATUS_COMPLETE
FAILED = release_pb2.BUILD_STATUS_FAILED


@dataclass
class Script:
    lines: list[str] = field(default_factory=lambda: ["Building: web", "step 1/2", "step 2/2"])
    reason: str = ""  # a failed build when set
    # Line numbers at which the first stream about to send them ends with UNAVAILABLE.
    drop_before: set[int] = field(default_factory=set)
    # Lines written before the build waits for release_hold(); None: no wait.
    hold_after: int | None = None


@dataclass
class _Run:
    build: release_pb2.Build
    script: Script
    written: int = 0
    held: threading.Event = field(default_factory=threading.Event)


class FakeBuilds(build_pb2_grpc.BuildServiceServicer):
    def __init__(self) -> None:
        self.script = Script()
        self.sources: dict[str, bytes] = {}
        self.created: list[build_pb2.CreateBuildRequest] = []
        self.log_requests: list[tuple[int, bool]] = []  # (after_seq, follow)
        self.runs: dict[str, _Run] = {}
        self._dropped: set[tuple[str, int]] = set()
        self._changed = threading.Condition()
        self._count = 0

    def _id(self, prefix: str) -> str:
        self._count += 1
        letters = "".join(chr(ord("A") + (self._count // 26**i) % 26) for i in range(10))
        return prefix + letters

    def release_hold(self, build_id: str) -> None:
        self.runs[build_id].held.set()

    def StatSource(
        self, request: build_pb2.StatSourceRequest, context: grpc.ServicerContext
    ) -> build_pb2.SourceInfo:
        if request.sha256 not in self.sources:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no source archive {request.sha256}")
        return build_pb2.SourceInfo(sha256=request.sha256, size=len(self.sources[request.sha256]))

    def UploadSource(
        self,
        request_iterator: Iterator[build_pb2.UploadSourceRequest],
        context: grpc.ServicerContext,
    ) -> build_pb2.SourceInfo:
        header = next(request_iterator).header
        data = bytearray()
        for part in request_iterator:
            assert len(part.chunk) <= 1024 * 1024
            data += part.chunk
        if hashlib.sha256(data).hexdigest() != header.sha256 or len(data) != header.size:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the archive is not what was announced")
        self.sources[header.sha256] = bytes(data)
        return build_pb2.SourceInfo(sha256=header.sha256, size=len(data))

    def CreateBuild(
        self, request: build_pb2.CreateBuildRequest, context: grpc.ServicerContext
    ) -> release_pb2.Build:
        self.created.append(request)
        if request.source_sha256 not in self.sources:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no such source")
        return self.start(
            release_pb2.Build(
                app=request.app,
                description=request.description,
                git_sha=request.git_sha,
                source_sha256=request.source_sha256,
            )
        )

    def start(self, build: release_pb2.Build) -> release_pb2.Build:
        """Run ``build`` by the current script (tests call it to skip the upload)."""
        build.id = self._id("B")
        build.status = release_pb2.BUILD_STATUS_CREATED
        run = _Run(build, self.script)
        self.runs[build.id] = run
        threading.Thread(target=self._run, args=(run,), daemon=True).start()
        return release_pb2.Build(id=build.id, status=build.status)

    def _run(self, run: _Run) -> None:
        with self._changed:
            run.build.status = RUNNING
        for number, _ in enumerate(run.script.lines, 1):
            if run.script.hold_after is not None and number > run.script.hold_after:
                run.held.wait(30)
            with self._changed:
                run.written = number
                run.build.log_lines = number
                self._changed.notify_all()
        with self._changed:
            if run.script.reason:
                run.build.status, run.build.reason = FAILED, run.script.reason
            else:
                run.build.status, run.build.release_id = COMPLETE, self._id("R")
            self._changed.notify_all()

    def BuildLogs(
        self, request: build_pb2.BuildLogsRequest, context: grpc.ServicerContext
    ) -> Iterator[build_pb2.BuildUpdate]:
        self.log_requests.append((request.after_seq, request.follow))
        run = self.runs.get(request.id)
        if run is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"build {request.id} not found")
        yield build_pb2.BuildUpdate(build=run.build)
        sent = request.after_seq
        while True:
            written, done = self._wait(run, sent, request.follow)
            for seq in range(sent + 1, written + 1):
                if seq in run.script.drop_before and (run.build.id, seq) not in self._dropped:
                    self._dropped.add((run.build.id, seq))
                    context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset (scripted)")
                text = run.script.lines[seq - 1]
                yield build_pb2.BuildUpdate(line=build_pb2.BuildLogLine(seq=seq, text=text))
            sent = written
            if done or not request.follow:
                yield build_pb2.BuildUpdate(build=run.build)
                return

    def _wait(self, run: _Run, sent: int, follow: bool) -> tuple[int, bool]:
        """(lines written, build ended) once there is something new (at once without follow)."""

        def ended() -> bool:
            return run.build.status in (COMPLETE, FAILED)

        with self._changed:
            self._changed.wait_for(lambda: run.written > sent or ended() or not follow, 30)
            return run.written, ended()


class _Apps(release_pb2_grpc.ReleaseServiceServicer):
    """Every app exists (``relman build`` asks before it packages anything)."""

    def GetApp(
        self, request: release_pb2.GetAppRequest, context: grpc.ServicerContext
    ) -> release_pb2.App:
        return release_pb2.App(name=request.name)


def start_fake(fake: FakeBuilds, port: int) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    build_pb2_grpc.add_BuildServiceServicer_to_server(fake, server)
    release_pb2_grpc.add_ReleaseServiceServicer_to_server(_Apps(), server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    server.start()
    return server
