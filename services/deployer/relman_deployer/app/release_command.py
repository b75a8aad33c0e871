"""The release command phase of a promote (SPEC 8): before any rollout step, run the
manifest's ``release:`` command once with the new release's image and env, its events and
output lines written to the deployment's log as they come.

It ends in one of three ways: the command succeeded (the rollout follows), it failed or timed
out (the deployment ends ``failed``, nothing was applied), or the deployment was cancelled
while it ran (the backend stops the run; the deployment ends ``cancelled``). A Deployer that
stops while the command runs stops it too (the backend cleans the run up); the deployment,
resumed in phase ``pending`` by any Deployer, runs the command again from the start, and a
run a crashed Deployer left behind is followed rather than started twice (kubernetes: the Job
of the same name). Release commands must therefore be safe to run again, as on Heroku or Fly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from relman_common.lifecycle import Trigger
from relman_common.manifest import ReleaseCommand

from relman_deployer.app.run import Run
from relman_deployer.backends.base import (
    AppSpec,
    Backend,
    BackendEvent,
    CommandOutcome,
    release_job,
)
from relman_deployer.domain import release_command as words
from relman_deployer.domain.model import APP_SOURCE

log = logging.getLogger("relman.deployer")


@dataclass(frozen=True)
class Ended:
    """The deployment ends before any rollout step: ``trigger`` with ``reason``."""

    trigger: Trigger
    reason: str


async def run_release_command(
    backend: Backend, run: Run, spec: AppSpec, command: ReleaseCommand
) -> Ended | None:
    """Run ``command`` of ``spec``'s release for ``run``; None when it succeeded."""
    d = run.deployment
    job = release_job(spec, command, d.id)
    if run.cancel_requested.is_set():
        return Ended(Trigger.PRE_ROLLOUT_CANCELLED, f"cancelled by {run.cancelled_by}")
    run.emit(APP_SOURCE, words.RELEASE_COMMAND_REASON, words.announcement(job.command))
    log.info("deployment %s app %s: running release command %s", d.id, d.app, job.name)

    async def follow() -> CommandOutcome:
        async with contextlib.aclosing(backend.run_release_command(job)) as items:
            async for item in items:
                if isinstance(item, BackendEvent):
                    run.emit_backend(item)
                else:
                    return item
        raise RuntimeError(f"the {backend.name} backend ended release command {job.name} early")

    following = asyncio.create_task(follow(), name=f"release-command-{d.id}")
    cancelled = asyncio.create_task(run.cancel_requested.wait())
    try:
        await asyncio.wait(
            (following, cancelled),
            timeout=job.timeout_seconds + words.GRACE_SECONDS,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        cancelled.cancel()
        if not following.done():
            # Cancelled, no outcome in time, or this Deployer stopping: the backend stops
            # and removes the run while the task unwinds.
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
    if following.cancelled():
        if run.cancel_requested.is_set():
            log.info("deployment %s app %s: release command stopped by a cancel", d.id, d.app)
            return Ended(Trigger.PRE_ROLLOUT_CANCELLED, f"cancelled by {run.cancelled_by}")
        outcome = CommandOutcome(exit_code=None, timed_out=True)
    else:
        outcome = following.result()  # a backend error ends the deployment (runner: ERROR)
    reason = words.failure(job.command, job.timeout_seconds, outcome)
    if reason is None:
        return None
    log.info("deployment %s app %s: %s", d.id, d.app, reason)
    return Ended(Trigger.PRE_ROLLOUT_FAILED, reason)
