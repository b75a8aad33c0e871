"""Following one rollout: apply a desired state, then read the backend's observations until
the policy decides (or a cancellation arrives).

Observations are pumped from the backend's stream into the run's queue by a task of their own;
events are written to the deployment's log as they come, status snapshots are judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from relman_common.clock import Clock

from relman_deployer.app.run import Cancelled, QueueItem, Run
from relman_deployer.backends.base import AppSpec, Backend, BackendEvent
from relman_deployer.domain.policy import RolloutPolicy, Verdict

log = logging.getLogger("relman.deployer")

# How long to wait for a backend's first snapshot before applying anyway.
FIRST_OBSERVATION_SECONDS = 5.0


@dataclass(frozen=True)
class RolloutFollower:
    backend: Backend
    clock: Clock
    crashloop_threshold: int

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
                now=self.clock(),
            )
            while True:
                verdict = await self._next_verdict(run, policy, pending, cancellable)
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
        self, run: Run, policy: RolloutPolicy, pending: list[QueueItem], cancellable: bool
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
            return None
        run.seen_release = item.release_id
        return policy.observe(item, self.clock())

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


def _drain(run: Run) -> None:
    """Forget what the last rollout's stream left behind (keeping a pending cancellation)."""
    while not run.queue.empty():
        item = run.queue.get_nowait()
        if isinstance(item, Cancelled):
            run.queue.put_nowait(item)
            return
