"""Following one rollout: apply a desired state, then read the backend's observations until
the policy decides (or a cancellation arrives).

Observations are pumped from the backend's stream into the run's queue by a task of their own;
events are written to the deployment's log as they come, status snapshots are judged. While the
deployment's own release rolls out, both also feed its diagnostics (counts, pod states, the
last warnings), stored every few seconds while they change and once more at the end, with the
last log lines of failing pods when the rollout failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from relman_common.clock import Clock
from relman_common.errors import RelmanError

from relman_deployer.app.run import Cancelled, QueueItem, Run
from relman_deployer.backends.base import AppSpec, Backend, BackendEvent
from relman_deployer.domain.diagnostics import LOG_LINES, Diagnostics, DiagnosticsRecorder
from relman_deployer.domain.failfast import DEFAULT_SCHEDULING_GRACE_SECONDS
from relman_deployer.domain.policy import RolloutPolicy, Verdict

log = logging.getLogger("relman.deployer")

# How long to wait for a backend's first snapshot before applying anyway.
FIRST_OBSERVATION_SECONDS = 5.0
# Diagnostics that changed are stored at most this often while the rollout goes on.
DIAGNOSTICS_INTERVAL_SECONDS = 2.0
# How long fetching the failing pods' logs may take at the end of a failed rollout.
LOGS_SECONDS = 5.0


class DiagnosticsSink(Protocol):
    async def save_diagnostics(self, deployment_id: str, diagnostics: Diagnostics) -> None: ...


@dataclass(frozen=True)
class RolloutFollower:
    backend: Backend
    clock: Clock
    crashloop_threshold: int
    scheduling_grace: float = DEFAULT_SCHEDULING_GRACE_SECONDS
    diagnostics: DiagnosticsSink | None = None

    async def follow(
        self,
        run: Run,
        spec: AppSpec,
        *,
        cancellable: bool,
        on_applied: Callable[[], None] | None = None,
    ) -> Verdict:
        """Apply ``spec`` and follow the backend until the policy decides.

        ``on_applied`` runs once the backend reports on the new release (after the events
        ``apply`` caused, as the seed's listing shows), or, at the latest, when the verdict is
        in.
        """
        pump = asyncio.create_task(self._pump(run), name=f"observe-{run.id}")
        # Diagnostics are of the deployment's own release, not of a rollback's.
        recorder = (
            _Recording(DiagnosticsRecorder(spec.release_id), time.monotonic())
            if self.diagnostics is not None and spec.release_id == run.deployment.release_id
            else None
        )
        try:
            # The snapshot from before apply counts too: it is complete already when the app
            # runs this release (a re-deploy, or a resumed rollout that had finished).
            pending: list[QueueItem] = []
            first = await self._first_observation(run)
            if first is not None:
                pending.append(first)
            await self.backend.apply(spec)
            policy = RolloutPolicy(
                spec.release_id,
                timeout_seconds=spec.progress_deadline_seconds,
                crashloop_threshold=self.crashloop_threshold,
                scheduling_grace_seconds=self.scheduling_grace,
                now=self.clock(),
            )
            while True:
                verdict = await self._next_verdict(run, policy, pending, cancellable, recorder)
                if recorder is not None:
                    await self._record(run, recorder, verdict)
                if on_applied is not None and (
                    verdict is not None or run.seen_release == spec.release_id
                ):
                    on_applied()
                    on_applied = None
                if verdict is not None:
                    return verdict
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            _drain(run)

    async def _next_verdict(
        self,
        run: Run,
        policy: RolloutPolicy,
        pending: list[QueueItem],
        cancellable: bool,
        recorder: _Recording | None = None,
    ) -> Verdict | None:
        """Take one observation (or time out) and judge it."""
        if cancellable and run.cancelled_by:
            return Verdict(succeeded=False, reason=f"cancelled by {run.cancelled_by}")
        if pending:
            item = pending.pop()
        elif not run.queue.empty():
            item = run.queue.get_nowait()  # no timer to arm: most observations come in bursts
        else:
            timeout = max(policy.seconds_left(self.clock()), 0.001)
            try:
                async with asyncio.timeout(timeout):
                    item = await run.queue.get()
            except TimeoutError:
                return policy.check(self.clock())
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Cancelled):
            return None
        if isinstance(item, BackendEvent):
            run.emit_backend(item)
            if recorder is not None:
                recorder.recorder.event(item)
            return None
        run.seen_release = item.release_id
        if recorder is not None:
            recorder.recorder.status(item)
        return policy.observe(item, self.clock())

    async def _record(self, run: Run, recording: _Recording, verdict: Verdict | None) -> None:
        """Store the diagnostics while the rollout goes: when they changed and the last store
        is a while ago, in the background, in order (the deployment's end waits for them:
        :meth:`Run.writes_done`; one that fails is logged: diagnostics never stop a rollout).
        At the verdict they are kept for the end, which writes them with the outcome (with the
        failing pods' last log lines when the rollout failed)."""
        recorder = recording.recorder
        now = time.monotonic()
        if verdict is None and (
            not recorder.changed or now - recording.saved < DIAGNOSTICS_INTERVAL_SECONDS
        ):
            return
        if verdict is not None and not verdict.succeeded:
            await self._fetch_logs(run, recorder)  # now: the rollback deletes the pods
        recorder.changed = False
        recording.saved = now
        if verdict is not None:  # written with the outcome, in its transaction
            run.diagnostics = recorder.snapshot(self.clock())
        else:
            run.write_later(self._save(run.id, recorder.snapshot(self.clock())))

    async def _save(self, deployment_id: str, diagnostics: Diagnostics) -> None:
        assert self.diagnostics is not None
        try:
            await self.diagnostics.save_diagnostics(deployment_id, diagnostics)
        except Exception as err:  # diagnostics never stop (or fail) a deployment
            log.warning("deployment %s: diagnostics not stored: %r", deployment_id, err)

    async def _fetch_logs(self, run: Run, recorder: DiagnosticsRecorder) -> None:
        async def one(pod: str, container: str) -> None:
            try:
                lines = await self.backend.pod_logs(run.deployment.app, pod, container, LOG_LINES)
            except RelmanError as err:
                log.info("deployment %s: no logs of pod %s: %s", run.id, pod, err)
                return
            if lines:
                recorder.logs(pod, lines)

        fetches = [one(pod.name, pod.container) for _, pod in recorder.failing_pods()]
        if not fetches:
            return
        try:
            async with asyncio.timeout(LOGS_SECONDS):
                await asyncio.gather(*fetches)
        except TimeoutError:
            log.info("deployment %s: logs of failing pods took too long", run.id)

    async def _first_observation(self, run: Run) -> QueueItem | None:
        """Wait (briefly) until the backend has sent something, so ``observe`` is subscribed."""
        try:
            return await asyncio.wait_for(run.queue.get(), timeout=FIRST_OBSERVATION_SECONDS)
        except TimeoutError:
            log.warning("deployment %s: backend sent no first snapshot", run.id)
            return None

    async def _pump(self, run: Run) -> None:
        stream = self.backend.observe(run.deployment.app)
        try:
            async for item in stream:
                run.queue.put_nowait(item)
            run.queue.put_nowait(RuntimeError("the backend stopped reporting"))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            run.queue.put_nowait(err)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


@dataclass
class _Recording:
    recorder: DiagnosticsRecorder
    saved: float = float("-inf")


def _drain(run: Run) -> None:
    """Forget what the last rollout's stream left behind (keeping a pending cancellation)."""
    while not run.queue.empty():
        item = run.queue.get_nowait()
        if isinstance(item, Cancelled):
            run.queue.put_nowait(item)
            return
