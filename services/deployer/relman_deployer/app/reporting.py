"""Reports to the Release service, in order per app, without holding up the rollout.

Each report runs in a task of its own after the reports made before for the same app, so a
late ``running`` never lands after the outcome. A ``running`` report still waiting for its
turn when the outcome is ready is dropped (the outcome says more). On stop, reports in flight
get a grace period to land.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from relman_common.errors import RelmanError
from relman_common.lifecycle import Outcome

from relman_deployer.domain.model import Deployment
from relman_deployer.release_client import ReleaseClient

log = logging.getLogger("relman.deployer")


class Reporter:
    def __init__(self, releases: ReleaseClient) -> None:
        self._releases = releases
        # app -> the task sending its latest report
        self._latest: dict[str, asyncio.Task[str]] = {}
        # deployment id -> (its running report, whether it was sent)
        self._running: dict[str, tuple[asyncio.Task[str], list[bool]]] = {}

    def running(self, d: Deployment) -> None:
        """Report that ``d`` runs, soon; nobody waits for it."""
        sent: list[bool] = []
        task = self._soon(d, Outcome.RUNNING, "", on_send=lambda: sent.append(True))
        self._running[d.id] = (task, sent)

    async def outcome(self, d: Deployment, outcome: Outcome, reason: str) -> str:
        """Report how ``d`` ended, and wait until the Release service has it; why it did not
        take it ("" when it did: reports are retried while it is unavailable)."""
        running = self._running.pop(d.id, None)
        if running is not None and not running[0].done() and not running[1]:
            running[0].cancel()  # still waiting for its turn: the outcome replaces it
        return await self._soon(d, outcome, reason)

    def forget(self, d: Deployment) -> None:
        """``d`` stopped running here (shutdown, lease lost): drop its pending ``running``."""
        running = self._running.pop(d.id, None)
        if running is not None:
            running[0].cancel()

    def _soon(
        self,
        d: Deployment,
        outcome: Outcome,
        reason: str,
        on_send: Callable[[], None] | None = None,
    ) -> asyncio.Task[str]:
        before = self._latest.get(d.app)

        async def send() -> str:
            if before is not None and not before.done():
                await asyncio.wait([before])
            try:
                await self._releases.report(d, outcome, reason, on_send=on_send)
            except RelmanError as err:
                log.error("deployment %s: reporting %s failed: %s", d.id, outcome.value, err)
                return str(err)
            return ""

        task = asyncio.create_task(send(), name=f"report-{d.id}-{outcome.value}")
        self._latest[d.app] = task

        def done(finished: asyncio.Task[str]) -> None:
            if self._latest.get(d.app) is finished:
                del self._latest[d.app]

        task.add_done_callback(done)
        return task

    async def settle(self, grace: float) -> None:
        """Give reports in flight ``grace`` seconds to land, then drop them."""
        pending = list(self._latest.values())
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            log.error("stopped with %d deployment report(s) not delivered", len(late))
        await asyncio.gather(*pending, return_exceptions=True)
