"""Deletes the files pruned builds left (SPEC 9): source archives and images by digest.

A prune lists them as garbage rows in its own transaction; this task deletes each file and
then its row, at start (what a crash left), when kicked after a prune, and every
``interval`` seconds (automatic prunes, other replicas' prunes). A file a build names again
(the same source uploaded anew, a reproducible image) is not deleted, only forgotten.
Deleting twice is harmless, so replicas may sweep at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from relman_common.db import DbExecutor
from relman_common.errors import InvalidArgument, NotFound, RelmanError

from relman_release.app import garbage
from relman_release.builds.workshop import Workshop
from relman_release.domain.retention import IMAGE, SOURCE
from relman_release.images.reference import parse_image
from relman_release.ports import UnitOfWork

log = logging.getLogger("relman.retention")

SWEEP_INTERVAL_SECONDS = 30.0
BATCH = 100


class Sweeper:
    def __init__(
        self,
        uow: UnitOfWork,
        db: DbExecutor,
        workshop: Workshop,
        interval: float = SWEEP_INTERVAL_SECONDS,
    ) -> None:
        self._uow = uow
        self._db = db
        self._workshop = workshop
        self._interval = interval
        self._kicked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="garbage-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self) -> None:
        """Sweep now (after a prune's commit)."""
        self._kicked.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or store outage: try again next time
                log.exception("sweeping pruned files failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), self._interval)
            self._kicked.clear()

    async def sweep(self) -> int:
        """Deletes what is waiting; how many files went."""
        deleted = 0
        while True:
            rows = await self._db.run(garbage.waiting, self._uow, BATCH)
            done: list[int] = []
            for seq, kind, ref in rows:
                if await self._db.run(garbage.still_used, self._uow, kind, ref):
                    done.append(seq)
                    continue
                try:
                    if await self._db.run(self._delete, kind, ref):
                        deleted += 1
                except RelmanError as err:  # e.g. the registry refuses: keep it for next time
                    log.warning("could not delete pruned %s %s: %s", kind, ref, err)
                    continue
                done.append(seq)
            if done:
                await self._db.run(garbage.forget, self._uow, done)
            if len(rows) < BATCH or not done:
                return deleted

    def _delete(self, kind: str, ref: str) -> bool:
        """Deletes the file; False when it is not this service's or was gone already."""
        if kind == SOURCE:
            self._workshop.sources.delete(ref)
            log.info("pruned source archive %s", ref)
            return True
        if kind != IMAGE:
            return False
        try:
            image = parse_image(ref)
        except InvalidArgument:
            return False
        store = self._workshop.images
        if image.registry != store.host or not image.digest:
            return False  # an image relman did not store: never touched
        try:
            store.delete_manifest(image.repository, image.digest)
        except NotFound:
            return False
        log.info("pruned image %s", ref)
        return True
