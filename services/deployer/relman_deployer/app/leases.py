"""Leases of running deployments: renewed while this instance works on them, taken over when
their owner is gone.

Every ttl/3 this instance renews all its leases in one transaction, picks up cancellations
requested through other instances, and stops runs whose lease another instance took. Every
:func:`orphan_scan_seconds` (at most a second) it looks for running deployments whose lease
expired and resumes them: an owner that dies has renewed its lease at most a TTL before it
expires, so its deployments are taken over within TTL + that interval + one claim (SPEC 10:
TTL + 2 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from relman_common.clock import Clock

from relman_deployer.app.run import Run
from relman_deployer.domain.model import Deployment
from relman_deployer.store.repository import DeploymentStore

log = logging.getLogger("relman.deployer")

# The longest wait between two looks for orphans (one indexed query of running deployments).
MAX_ORPHAN_SCAN_SECONDS = 1.0


def orphan_scan_seconds(ttl: float) -> float:
    """How often to look for deployments whose owner is gone: a third of the TTL, at most
    MAX_ORPHAN_SCAN_SECONDS.

    >>> orphan_scan_seconds(15.0), orphan_scan_seconds(1.5)
    (1.0, 0.5)
    """
    return min(ttl / 3, MAX_ORPHAN_SCAN_SECONDS)


class LeaseKeeper:
    def __init__(
        self,
        store: DeploymentStore,
        owner: str,
        ttl: float,
        clock: Clock,
        runs: dict[str, Run],
        launch: Callable[[Deployment], None],
    ) -> None:
        self._store = store
        self.owner = owner
        self.ttl = ttl
        self._clock = clock
        self._runs = runs
        self._launch = launch
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def until(self) -> datetime:
        """When a lease taken or renewed now expires."""
        return self._clock() + timedelta(seconds=self.ttl)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                self._every(orphan_scan_seconds(self.ttl), self.resume_orphans, at_once=True),
                name="resume",
            ),
            asyncio.create_task(self._every(self.ttl / 3, self.renew), name="renew-leases"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def hand_off(self) -> None:
        """Expire this instance's leases now, so another instance (or this one restarted)
        resumes its deployments at once instead of after the TTL."""
        try:
            handed = await self._store.hand_off(self.owner, self._clock())
        except Exception:
            log.exception("could not hand off leases; they expire in %ss", self.ttl)
        else:
            if handed:
                log.info("handed off %d running deployment(s)", handed)

    async def _every(
        self, seconds: float, work: Callable[[], Awaitable[object]], *, at_once: bool = False
    ) -> None:
        if not at_once:
            await asyncio.sleep(seconds)
        while True:
            try:
                await work()
            except Exception:
                log.exception("%s failed", getattr(work, "__name__", "lease work"))
            await asyncio.sleep(seconds)

    async def renew(self) -> None:
        runs = dict(self._runs)
        held = await self._store.renew(self.owner, runs.keys(), self.until())
        if held is None:
            return
        for deployment_id, run in runs.items():
            if deployment_id not in held:
                if run.task is not None and not run.task.done():
                    log.warning(
                        "deployment %s app %s: lease lost to another instance",
                        deployment_id,
                        run.deployment.app,
                    )
                    run.task.cancel()
            elif held[deployment_id]:
                run.cancel(held[deployment_id])

    async def resume_orphans(self) -> list[str]:
        """Take over running deployments whose owner is gone; the ids resumed."""
        if self._stopping:
            return []
        now = self._clock()
        resumed: list[str] = []
        for orphan in await self._store.orphans(now):
            if orphan.id in self._runs:
                continue
            claimed = await self._store.claim(orphan.id, self.owner, now, self.until())
            if claimed is None:
                continue
            log.info(
                "deployment %s app %s: resuming (%s, last event %d)",
                claimed.id,
                claimed.app,
                claimed.phase.value,
                claimed.last_seq,
            )
            self._launch(claimed)
            resumed.append(claimed.id)
        return resumed
