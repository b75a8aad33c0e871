"""The in-memory side of one running deployment: its next sequence number, its phase in the
lifecycle table, a cancellation, and the queue its backend observations arrive on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from relman_common.clock import Clock
from relman_common.lifecycle import Phase, Transition, Trigger, transition

from relman_deployer.backends.base import BackendEvent, Observation
from relman_deployer.domain.diagnostics import Diagnostics
from relman_deployer.domain.model import (
    APP_SOURCE,
    STATUS_CHANGE,
    Deployment,
    DeploymentEvent,
    PhaseChange,
)
from relman_deployer.events import EventLog

log = logging.getLogger("relman.deployer")


class Cancelled:
    """Put into a run's observation queue when a cancellation is requested."""


CANCELLED = Cancelled()

QueueItem = Observation | Cancelled | BaseException


class Run:
    def __init__(self, deployment: Deployment, events: EventLog, clock: Clock) -> None:
        self.deployment = deployment
        self.seq = deployment.last_seq
        self.phase = deployment.phase
        # Why it is rolling back (kept with the phase, so a resumed rollback knows).
        self.reason = deployment.reason
        self.cancelled_by = deployment.cancelled_by
        # Set once a cancellation is requested (what a release command's run waits on).
        self.cancel_requested = asyncio.Event()
        if self.cancelled_by:
            self.cancel_requested.set()
        # The release of the backend's latest status snapshot.
        self.seen_release: str | None = None
        self.queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        # The deployment as stored when it ended (None while it runs).
        self.ended: Deployment | None = None
        # Writes made beside the rollout (its diagnostics): done before its end is written.
        self.writes: list[asyncio.Task[None]] = []
        # The diagnostics of its release's rollout as it ended: written with the outcome.
        self.diagnostics: Diagnostics | None = None
        self._events = events
        self._clock = clock

    @property
    def id(self) -> str:
        return self.deployment.id

    def _next(self, source: str, reason: str, message: str) -> DeploymentEvent:
        self.seq += 1
        return DeploymentEvent(self.id, self.seq, self._clock(), source, reason, message)

    def emit_backend(self, event: BackendEvent) -> None:
        self.seq += 1
        self._events.append(
            DeploymentEvent(
                self.id, self.seq, event.time, event.source, event.reason, event.message
            )
        )

    def emit(self, source: str, reason: str, message: str) -> None:
        """An event the Deployer itself writes (not the cluster)."""
        self._events.append(self._next(source, reason, message))

    def advance(self, trigger: Trigger, reason: str = "") -> Transition:
        """Take ``trigger`` in the current phase (the lifecycle table says where to): a
        non-final transition writes its StatusChange event together with the new phase."""
        step = transition(self.phase, trigger)
        self.phase = step.after
        if reason:
            self.reason = reason
        if step.after is not Phase.ENDED and step.status_message is not None:
            log.info("deployment %s app %s: %s", self.id, self.deployment.app, step.status_message)
            event = self._next(APP_SOURCE, STATUS_CHANGE, step.status_message)
            self._events.append(event, PhaseChange(self.id, step.after, self.reason))
        return step

    def final_events(self, step: Transition) -> list[DeploymentEvent]:
        """The StatusChange of a final transition: written with the outcome, not before."""
        if step.status_message is None:
            return []
        log.info("deployment %s app %s: %s", self.id, self.deployment.app, step.status_message)
        return [self._next(APP_SOURCE, STATUS_CHANGE, step.status_message)]

    def write_later(self, write: Coroutine[Any, Any, None]) -> None:
        """Run ``write`` in the background, after the writes started before it."""
        before = self.writes[-1] if self.writes else None

        async def after() -> None:
            try:
                if before is not None:
                    await asyncio.wait([before])
            except asyncio.CancelledError:
                write.close()  # never started
                raise
            await write

        self.writes = [t for t in self.writes if not t.done()]
        self.writes.append(asyncio.create_task(after(), name=f"write-{self.id}"))

    async def writes_done(self) -> None:
        """Wait for the background writes (each logs its own failure)."""
        if self.writes:
            await asyncio.gather(*self.writes, return_exceptions=True)

    def cancel_writes(self) -> None:
        for task in self.writes:
            task.cancel()

    def cancel(self, actor: str) -> None:
        if not self.cancelled_by:
            self.cancelled_by = actor
            self.queue.put_nowait(CANCELLED)
            self.cancel_requested.set()
