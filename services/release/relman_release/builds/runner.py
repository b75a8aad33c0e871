"""The build runner: builds in the background, a few at a time, whoever asked for them.

Each Release service process has one runner with its own id. A build is created owned by
the runner of the process that created it (status CREATED, a heartbeat), queued, and run by
one of ``concurrency`` workers: RUNNING, then the work of :mod:`.job` in a daemon thread
while its log is stored every fraction of a second, then COMPLETE with a release (one
transaction) or FAILED with the builder's message. Every change names the runner, so a
build that was ended meanwhile (interrupted) stays ended.

Restarts and replicas: the runner renews the heartbeat of its unfinished builds every third
of ``ttl``; every ``ttl`` (and at start) any runner fails as ``interrupted`` the unfinished
builds whose heartbeat is older than ``ttl`` — their runner died — and removes their
temporary directories; a live runner's builds are never touched. Stopping, the runner takes
no more builds, tells its builds' threads to stop, and fails what is left of its own as
``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from relman_common.db import DbExecutor
from relman_common.errors import RelmanError
from relman_common.vocabulary import BUILD, looks_like

from relman_release.app import build_runs
from relman_release.builds.job import Interrupted, build_images
from relman_release.builds.logs import BuildLog, LogHub
from relman_release.builds.streams import in_thread
from relman_release.builds.workshop import Workshop
from relman_release.domain.model import Build, LogLine
from relman_release.ports import UnitOfWork

log = logging.getLogger("relman.builds")

# Seconds a stopping runner waits for its builds to notice and end by themselves.
STOP_GRACE_SECONDS = 2.0
# Temporary directories of exports and imports older than this were left by a dead process.
STALE_TEMP_SECONDS = 3600


def new_runner_id() -> str:
    return f"{socket.gethostname()[:40]}-{secrets.token_hex(6)}"


class BuildRunner:
    def __init__(
        self,
        uow: UnitOfWork,
        db: DbExecutor,
        workshop: Workshop,
        hub: LogHub,
        *,
        concurrency: int,
        ttl: float,
    ) -> None:
        self.id = new_runner_id()
        self.hub = hub
        self._uow = uow
        self._db = db
        self._workshop = workshop
        self._concurrency = concurrency
        self._ttl = ttl
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []
        # Builds running here, each with the event that tells its thread to stop.
        self._running: dict[str, threading.Event] = {}
        # Builds this runner answers for (queued or running): their heartbeats are renewed.
        self._owned: set[str] = set()
        self.stopping = False

    async def start(self) -> None:
        await self._sweep()
        self._workers = [
            asyncio.create_task(self._work(), name=f"build-worker-{n}")
            for n in range(self._concurrency)
        ]
        self._tasks = [asyncio.create_task(self._keep_alive(), name="build-heartbeat")]

    def submit(self, build_id: str) -> None:
        """Queue a build this runner owns (its status CREATED)."""
        self._owned.add(build_id)
        self._queue.put_nowait(build_id)

    async def stop(self) -> None:
        self.stopping = True
        for event in self._running.values():
            event.set()
        for task in self._tasks:
            task.cancel()
        for _ in self._workers:  # wakes the idle workers, which then end
            self._queue.put_nowait("")
        if self._workers:
            await asyncio.wait(self._workers, timeout=STOP_GRACE_SECONDS)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, *self._tasks, return_exceptions=True)
        left = await self._db.run(build_runs.interrupt_own_builds, self._uow, self.id)
        for build_id in left:
            self.hub.notify(build_id, last=True)
        if left:
            log.info("stopped; interrupted builds %s", ", ".join(left))

    # --- the work ------------------------------------------------------------------------

    async def _work(self) -> None:
        while not self.stopping:
            build_id = await self._queue.get()
            if self.stopping:
                return
            try:
                await self._run(build_id)
            except Exception:  # a bug or the database gone: the next build may still run
                log.exception("build %s: the runner failed", build_id)
            finally:
                # Not renewed any more: if it did not end, a sweep fails it after the TTL.
                self._owned.discard(build_id)

    async def _run(self, build_id: str) -> None:
        build = await self._db.run(build_runs.start_build, self._uow, build_id, self.id)
        if build is None:
            return
        self.hub.notify(build_id)
        stop = self._running[build_id] = threading.Event()
        build_log = BuildLog(build_id, self._store_lines(build_id), self.hub)
        flusher = asyncio.create_task(build_log.keep_flushing())
        log.info("build %s of %s: running", build_id, build.app)
        try:
            outcome = await self._build(build, build_log, stop)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await build_log.close()
            del self._running[build_id]
        said = await self._finish(build_id, outcome)
        self.hub.notify(build_id, last=True)
        log.info("build %s of %s: %s", build_id, build.app, said)

    async def _finish(self, build_id: str, outcome: dict[str, str] | str) -> str:
        """COMPLETE with a release, or FAILED; what happened, in words."""
        if isinstance(outcome, dict):
            try:
                done = await self._db.run(
                    build_runs.complete_build, self._uow, build_id, self.id, outcome
                )
                return f"complete, release {done.release_id}" if done else "ended elsewhere"
            except RelmanError as err:  # the release could not be made: the build failed
                outcome = f"no release could be made of it: {err}"
        failed = await self._db.run(build_runs.fail_build, self._uow, build_id, self.id, outcome)
        return f"failed: {outcome}" if failed else "ended elsewhere"

    async def _build(
        self, build: Build, build_log: BuildLog, stop: threading.Event
    ) -> dict[str, str] | str:
        """The images, or why the build failed."""
        try:
            return await in_thread(build_images, self._workshop, build, build_log.line, stop)
        except Interrupted:
            return build_runs.INTERRUPTED
        except RelmanError as err:
            return str(err) or type(err).__name__
        except Exception as err:
            log.error("build %s failed unexpectedly", build.id, exc_info=err)
            return f"internal error in the {self._workshop.builder.name} builder (see the log)"

    def _store_lines(self, build_id: str) -> Callable[[list[LogLine]], Awaitable[None]]:
        async def store(lines: list[LogLine]) -> None:
            await self._db.run(build_runs.append_log, self._uow, build_id, lines)

        return store

    # --- heartbeats and the dead ---------------------------------------------------------

    async def _keep_alive(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self._ttl / 3)
            beats += 1
            try:
                owned = sorted(self._owned)
                await self._db.run(build_runs.renew_builds, self._uow, self.id, owned)
                if beats % 3 == 0:
                    await self._sweep()
            except Exception:  # the database is away: try again at the next beat
                log.exception("build heartbeat failed")

    async def _sweep(self) -> None:
        """Fails the builds of dead runners, and removes their temporary directories."""
        dead = await self._db.run(build_runs.interrupt_stale_builds, self._uow, self._ttl)
        for build_id in dead:
            self.hub.notify(build_id, last=True)
            log.info("build %s: its runner is gone; failed as interrupted", build_id)
        await self._db.run(self._remove_left_over, dead)

    def _remove_left_over(self, dead: list[str]) -> None:
        """Temporary directories that the process which made them did not remove: of builds
        that ended, and exports and imports older than STALE_TEMP_SECONDS."""
        for path in self._workshop.work_dir.iterdir():
            build_id = path.name.split("-", 1)[0]
            if build_id in dead or self._left_over(path, build_id):
                shutil.rmtree(path, ignore_errors=True)

    def _left_over(self, path: Path, build_id: str) -> bool:
        if build_id in self._running:
            return False
        if not looks_like(BUILD, build_id):
            with contextlib.suppress(FileNotFoundError):
                return path.stat().st_mtime < time.time() - STALE_TEMP_SECONDS
            return False
        with self._uow.read() as repo:
            build = repo.find_build(build_id)
        return build is None or build.finished
