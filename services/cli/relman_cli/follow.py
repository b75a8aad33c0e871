"""Following a deployment's stream to its end, across broken connections.

Promote, Rollback and Watch all stream ``DeploymentUpdate`` messages: the deployment (first,
and again at the end with its outcome) and its events, numbered from 1 without gaps. The
follower remembers the last sequence number it showed; when the stream breaks (the Deployer
restarted, the network dropped) it reopens ``Watch(deployment, after_seq=last)`` with a short
backoff, so every event is shown exactly once. It gives up after ``reconnect_for`` seconds
without a message, telling the user how to pick the deployment up again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
from relman.v1 import deployer_pb2, types_pb2

from relman_cli.errors import CliError

Deployment = deployer_pb2.Deployment
DeploymentEvent = deployer_pb2.DeploymentEvent
DeploymentUpdate = deployer_pb2.DeploymentUpdate

RUNNING = types_pb2.OUTCOME_RUNNING
SUCCEEDED = types_pb2.OUTCOME_SUCCEEDED

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


class StreamLost(CliError):
    """The stream broke and could not be resumed in time; the deployment itself goes on."""


@dataclass
class Followed:
    """What the follower has seen so far (also what a detach message needs)."""

    deployment: Deployment | None = None  # the latest one
    last_seq: int = 0
    events: int = 0
    reconnects: int = 0
    deployment_id: str = field(default="")


class DeploymentFollower:
    """Reads one deployment's updates, calling ``on_deployment`` and ``on_event`` in order.

    ``on_deployment`` sees every deployment message (the first one tells the caller which
    release and deployment this is); ``on_event`` sees each event once, in sequence order.
    ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        open_watch: OpenWatch,
        translate: Callable[[grpc.RpcError], CliError],
        on_event: Callable[[DeploymentEvent], None],
        on_deployment: Callable[[Deployment], None] | None = None,
        *,
        reconnect_for: float = 30.0,
        first_backoff: float = 0.1,
        max_backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        stop_after_seq: int | None = None,
    ) -> None:
        self._open_watch = open_watch
        self._translate = translate
        self._on_event = on_event
        self._on_deployment = on_deployment
        self._reconnect_for = reconnect_for
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock
        self._stop_after_seq = stop_after_seq
        self.seen = Followed()

    @property
    def finished(self) -> bool:
        d = self.seen.deployment
        return d is not None and d.outcome != RUNNING

    def follow(self, stream: Iterator[DeploymentUpdate]) -> Deployment | None:
        """Follow ``stream`` (and its Watch reconnections) until the deployment ends.

        Returns the final Deployment message (None if the stream ended before naming one).
        With ``stop_after_seq`` it returns as soon as that event has been shown (the last
        message seen, possibly still running). Raises :class:`StreamLost` when reconnecting
        fails for ``reconnect_for`` seconds, and a CliError for any other failed call.
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
                        return self.seen.deployment
                if self.finished or not self.seen.deployment_id:
                    return self.seen.deployment  # None if the stream never named a deployment
                failure: grpc.RpcError | None = None  # ended cleanly, but mid-deployment
            except grpc.RpcError as err:
                if err.code() not in RETRIABLE or not self.seen.deployment_id:
                    raise self._translate(err) from None
                failure = err
            if self._clock() - last_progress > self._reconnect_for:
                raise self._gave_up(failure)
            self._sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
            self.seen.reconnects += 1
            stream = self._open_watch(self.seen.deployment_id, self.seen.last_seq)

    def _take(self, update: DeploymentUpdate) -> bool:
        """Show one update; True when the caller asked to stop here."""
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

    def _gave_up(self, failure: grpc.RpcError | None) -> StreamLost:
        reason = self._translate(failure) if failure is not None else "the stream kept ending"
        return StreamLost(
            f"lost the deployment stream of {self.seen.deployment_id} after event "
            f"{self.seen.last_seq} ({reason})"
        )


def _cancel(stream: Iterator[DeploymentUpdate]) -> None:
    cancel = getattr(stream, "cancel", None)
    if callable(cancel):
        cancel()
