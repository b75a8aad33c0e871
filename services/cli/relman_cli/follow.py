"""Following a deployment's stream, or a build's log, to its end across broken connections.

Promote, Rollback and Watch all stream ``DeploymentUpdate`` messages: the deployment (first,
and again at the end with its outcome) and its events, numbered from 1 without gaps.
BuildLogs streams ``BuildUpdate`` messages the same way: the build, its log lines numbered
from 1, the build again at the end. A follower remembers the last sequence number it showed;
when the stream breaks (the service restarted, the network dropped) it reopens the stream
after that number (``Watch(deployment, after_seq)``, ``BuildLogs(build, after_seq)``) with a
short backoff, so every item is shown exactly once; Watch works on every Deployer, so the CLI
reopens it on the next address of the rack's list. A Promote whose stream broke before it
named its deployment is sent again with its request id, which streams the same deployment.
It gives up after ``reconnect_for`` seconds without a message, telling the user how to pick
the stream up again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc
from relman.v1 import build_pb2, deployer_pb2, release_pb2, types_pb2

from relman_cli.errors import CliError

Deployment = deployer_pb2.Deployment
DeploymentEvent = deployer_pb2.DeploymentEvent
DeploymentUpdate = deployer_pb2.DeploymentUpdate
Build = release_pb2.Build
BuildLogLine = build_pb2.BuildLogLine
BuildUpdate = build_pb2.BuildUpdate

RUNNING = types_pb2.OUTCOME_RUNNING
SUCCEEDED = types_pb2.OUTCOME_SUCCEEDED
# How long to keep trying to reconnect to a service that went away mid-stream (the CLI uses
# RELMAN_RETRY_SECONDS).
RECONNECT_SECONDS = 30.0

BUILD_DONE = frozenset({release_pb2.BUILD_STATUS_COMPLETE, release_pb2.BUILD_STATUS_FAILED})

# Codes a broken connection or a restarting server produce. Anything else (NOT_FOUND,
# FAILED_PRECONDITION, ...) is an answer, not an accident, and is reported at once.
RETRIABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)

OpenWatch = Callable[[str, int], Iterator[DeploymentUpdate]]
OpenLogs = Callable[[int], Iterator[BuildUpdate]]
U = TypeVar("U")


class StreamLost(CliError):
    """The stream broke and could not be resumed in time; what it followed goes on.
    ``reason`` is why the last attempt failed."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


@dataclass
class Seen:
    last_seq: int = 0  # the last numbered item shown
    reconnects: int = 0


S = TypeVar("S", bound=Seen)


class Resumable(Generic[U, S]):
    """Reads a stream of updates, some numbered from 1 without gaps, to its end; when it
    breaks, reopens it after the last number shown, with a short backoff, so that every
    numbered item is shown exactly once. Subclasses say what an update shows and when the
    followed thing has ended. ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        seen: S,
        translate: Callable[[grpc.RpcError], CliError],
        *,
        reconnect_for: float = RECONNECT_SECONDS,
        first_backoff: float = 0.1,
        max_backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seen = seen
        self._translate = translate
        self._reconnect_for = reconnect_for
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock

    # --- what a subclass says ----------------------------------------------------------

    def _take(self, update: U) -> bool:
        """Show one update; True when the caller asked to stop here."""
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        """Whether the followed thing has ended (a clean end of the stream is its end)."""
        raise NotImplementedError

    def _resumable(self) -> bool:
        """Whether the stream can be reopened (it named what it follows)."""
        return True

    def _reopen(self) -> Iterator[U]:
        raise NotImplementedError

    def _gave_up(self, reason: str) -> StreamLost:
        raise NotImplementedError

    # --- the loop ----------------------------------------------------------------------

    def _follow(self, stream: Iterator[U]) -> None:
        """Follow ``stream`` and its reopenings until the end (or until ``_take`` says stop).

        Raises :class:`StreamLost` when reopening fails for ``reconnect_for`` seconds, and a
        CliError for any failed call that is an answer rather than an accident.
        """
        last_progress = self._clock()
        backoff = self._first_backoff
        while True:
            try:
                for update in stream:
                    last_progress = self._clock()
                    backoff = self._first_backoff
                    if self._take(update):
                        _cancel(stream)
                        return
                if self.finished or not self._resumable():
                    return
                failure: grpc.RpcError | None = None  # ended cleanly, but too early
            except grpc.RpcError as err:
                if err.code() not in RETRIABLE or not self._resumable():
                    raise self._translate(err) from None
                failure = err
            if self._clock() - last_progress > self._reconnect_for:
                reason = self._translate(failure) if failure is not None else None
                raise self._gave_up(str(reason) if reason else "the stream kept ending")
            self._sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
            self.seen.reconnects += 1
            stream = self._reopen()


@dataclass
class Followed(Seen):
    """What the deployment follower has seen so far (also what a detach message needs)."""

    deployment: Deployment | None = None  # the latest one
    events: int = 0
    deployment_id: str = field(default="")


class DeploymentFollower(Resumable[DeploymentUpdate, Followed]):
    """Reads one deployment's updates, calling ``on_deployment`` and ``on_event`` in order.

    ``on_deployment`` sees every deployment message (the first one tells the caller which
    release and deployment this is); ``on_event`` sees each event once, in sequence order.
    A broken stream is resumed with ``open_watch(deployment id, last seq)``.
    """

    def __init__(
        self,
        open_watch: OpenWatch,
        translate: Callable[[grpc.RpcError], CliError],
        on_event: Callable[[DeploymentEvent], None],
        on_deployment: Callable[[Deployment], None] | None = None,
        *,
        stop_after_seq: int | None = None,
        restart: Callable[[], Iterator[DeploymentUpdate]] | None = None,
        **timing: Any,
    ) -> None:
        super().__init__(Followed(), translate, **timing)
        self._open_watch = open_watch
        self._on_event = on_event
        self._on_deployment = on_deployment
        self._stop_after_seq = stop_after_seq
        # Opens the first stream again when it broke before naming its deployment (a Promote
        # repeated with its request id streams the deployment the first call started).
        self._restart = restart

    @property
    def finished(self) -> bool:
        d = self.seen.deployment
        return d is not None and d.outcome != RUNNING

    def follow(self, stream: Iterator[DeploymentUpdate]) -> Deployment | None:
        """Follow ``stream`` (and its Watch reconnections) until the deployment ends.

        Returns the final Deployment message (None if the stream ended before naming one).
        With ``stop_after_seq`` it returns as soon as that event has been shown (the last
        message seen, possibly still running).
        """
        self._follow(stream)
        return self.seen.deployment

    def _resumable(self) -> bool:
        return bool(self.seen.deployment_id) or self._restart is not None

    def _reopen(self) -> Iterator[DeploymentUpdate]:
        if not self.seen.deployment_id and self._restart is not None:
            return self._restart()
        return self._open_watch(self.seen.deployment_id, self.seen.last_seq)

    def _take(self, update: DeploymentUpdate) -> bool:
        kind = update.WhichOneof("update")
        if kind == "deployment":
            deployment = update.deployment
            self.seen.deployment = deployment
            self.seen.deployment_id = deployment.id
            if self._on_deployment is not None:
                self._on_deployment(deployment)
        elif kind == "event":
            event = update.event
            if event.seq <= self.seen.last_seq:
                return False  # replayed after a reconnect: shown already
            self.seen.last_seq = event.seq
            self.seen.events += 1
            self._on_event(event)
        stop = self._stop_after_seq
        return stop is not None and self.seen.last_seq >= stop

    def _gave_up(self, reason: str) -> StreamLost:
        return StreamLost(
            f"lost the deployment stream of {self.seen.deployment_id} after event "
            f"{self.seen.last_seq} ({reason})",
            reason,
        )


@dataclass
class BuildSeen(Seen):
    build: Build | None = None  # the latest one


class BuildLogFollower(Resumable[BuildUpdate, BuildSeen]):
    """Reads one build's log stream (BuildLogs): ``on_line`` sees each line once, in order,
    ``on_build`` every Build message. A broken stream is resumed with ``open_logs(last
    seq)``; with ``until_done`` a stream that ends before the build has is resumed too.
    """

    def __init__(
        self,
        build_id: str,
        open_logs: OpenLogs,
        translate: Callable[[grpc.RpcError], CliError],
        on_line: Callable[[BuildLogLine], None],
        on_build: Callable[[Build], None] | None = None,
        *,
        until_done: bool = True,
        **timing: Any,
    ) -> None:
        super().__init__(BuildSeen(), translate, **timing)
        self.build_id = build_id
        self._open_logs = open_logs
        self._on_line = on_line
        self._on_build = on_build
        self._until_done = until_done

    @property
    def finished(self) -> bool:
        b = self.seen.build
        return not self._until_done or (b is not None and b.status in BUILD_DONE)

    def follow(self, stream: Iterator[BuildUpdate]) -> Build | None:
        """Follow the build's log to its end; the last Build message seen (None if none)."""
        self._follow(stream)
        return self.seen.build

    def _reopen(self) -> Iterator[BuildUpdate]:
        return self._open_logs(self.seen.last_seq)

    def _take(self, update: BuildUpdate) -> bool:
        kind = update.WhichOneof("update")
        if kind == "build":
            self.seen.build = update.build
            if self._on_build is not None:
                self._on_build(update.build)
        elif kind == "line" and update.line.seq > self.seen.last_seq:
            self.seen.last_seq = update.line.seq
            self._on_line(update.line)
        return False

    def _gave_up(self, reason: str) -> StreamLost:
        return StreamLost(
            f"lost the log stream of build {self.build_id} after line {self.seen.last_seq} "
            f"({reason})"
        )


def _cancel(stream: Iterator[Any]) -> None:
    cancel = getattr(stream, "cancel", None)
    if callable(cancel):
        cancel()
