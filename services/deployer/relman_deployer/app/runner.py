"""Driving one deployment through the lifecycle table, from wherever it stands (a new one
starts at ``starting``; a resumed one at the phase its last StatusChange entered), to its end.

Roll the release out; when that fails or is cancelled, roll the previous release back in with
a deadline of its own. The outcome is reported to the Release service, then written with the
last StatusChange and the lease freed in one transaction: a client that saw the end finds
every write of it done, and a crash before that point resumes the deployment.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from relman_common.clock import Clock
from relman_common.errors import RelmanError
from relman_common.lifecycle import Kind, Phase, Transition, Trigger, transition
from relman_common.manifest import ReleaseCommand, Service

from relman_deployer.app.release_command import run_release_command
from relman_deployer.app.reporting import Reporter
from relman_deployer.app.rollout import RolloutFollower
from relman_deployer.app.run import Run
from relman_deployer.backends.base import AppSpec
from relman_deployer.domain import release_command as release_words
from relman_deployer.domain.model import APP_SOURCE, Deployment, Release
from relman_deployer.domain.policy import Verdict
from relman_deployer.events import EventHub, EventLog
from relman_deployer.release_client import ReleaseClient
from relman_deployer.store.repository import DeploymentStore

log = logging.getLogger("relman.deployer")


@dataclass(frozen=True)
class Targets:
    """What a deployment moves the app to, and what it rolls back to."""

    release: AppSpec
    previous: AppSpec
    # The release's release command (run before its rollout; never for a rollback).
    release_command: ReleaseCommand | None = None


def app_spec(
    app: str, release: Release | None, services: tuple[Service, ...], deadline: int
) -> AppSpec:
    """The desired state of ``app`` when ``release`` (None: nothing) runs ``services``."""
    if release is None:
        return AppSpec(app=app, release_id="", build_id="", progress_deadline_seconds=deadline)
    return AppSpec(
        app=app,
        release_id=release.id,
        build_id=release.build_id,
        env=dict(release.env),
        services=services,
        progress_deadline_seconds=deadline,
    )


class Runner:
    def __init__(
        self,
        store: DeploymentStore,
        events: EventLog,
        hub: EventHub,
        follower: RolloutFollower,
        reporter: Reporter,
        releases: ReleaseClient,
        clock: Clock,
    ) -> None:
        self._store = store
        self._events = events
        self._hub = hub
        self._follower = follower
        self._reporter = reporter
        self._releases = releases
        self._clock = clock

    async def execute(self, run: Run, targets: Targets | None) -> None:
        """Run ``run`` to its end (``targets`` None: resumed, ask the Release service)."""
        d = run.deployment
        try:
            if targets is None:
                targets = await self.targets_of(d)
            self._reporter.running(d)
            step, reason = await self._drive(run, targets)
            await self._finish(run, step, reason)
        except asyncio.CancelledError:
            # Shutting down, or the lease was lost: the deployment stays running for whoever
            # holds (or takes) the lease next.
            self._reporter.forget(d)
            run.cancel_writes()
            log.info("deployment %s app %s: stopped running here", d.id, d.app)
            raise
        except Exception as err:
            reason = str(err) if isinstance(err, RelmanError) else f"internal error: {err!r}"
            log.exception("deployment %s app %s failed: %s", d.id, d.app, reason)
            try:
                await self._finish(run, transition(run.phase, Trigger.ERROR), reason)
            except Exception:
                log.exception("deployment %s: could not record its failure", d.id)

    async def targets_of(self, d: Deployment) -> Targets:
        """What a resumed deployment deploys and restores, from the Release service."""
        deployable = await self._releases.get_deployable(d.app, d.release_id, d.actor, retry=True)
        active = deployable.active
        previous: Release | None = None
        services: tuple[Service, ...] = ()
        if active is not None and active.id == d.previous_release_id:
            previous, services = active, deployable.active_services
        elif d.previous_release_id:  # this deployment's release went active before a crash
            before = await self._releases.get_deployable(
                d.app, d.previous_release_id, d.actor, retry=True
            )
            previous, services = before.release, before.services
        deadline = d.timeout_seconds
        return Targets(
            release=app_spec(d.app, deployable.release, deployable.services, deadline),
            previous=app_spec(d.app, previous, services, deadline),
            release_command=deployable.release_command,
        )

    async def _drive(self, run: Run, targets: Targets) -> tuple[Transition, str]:
        """Roll out, and roll back if that fails; the final transition and its reason."""
        d = run.deployment
        if run.phase is Phase.STARTING:
            run.advance(Trigger.START)
        if run.phase is Phase.PENDING and targets.release_command is not None:
            if d.kind is Kind.ROLLBACK:
                message = release_words.skipped_for_rollback(
                    targets.release_command.command, d.rollback_of or targets.release.release_id
                )
                run.emit(APP_SOURCE, release_words.RELEASE_COMMAND_REASON, message)
            else:
                ended = await run_release_command(
                    self._follower.backend, run, targets.release, targets.release_command
                )
                if ended is not None:
                    return run.advance(ended.trigger), ended.reason
        if run.phase in (Phase.PENDING, Phase.UPDATING):

            def applied() -> None:
                if run.phase is Phase.PENDING:
                    run.advance(Trigger.APPLIED)

            if run.cancelled_by:
                verdict = Verdict(succeeded=False, reason=f"cancelled by {run.cancelled_by}")
            else:
                verdict = await self._follower.follow(
                    run, targets.release, cancellable=True, on_applied=applied
                )
            applied()
            if verdict.succeeded:
                return run.advance(Trigger.SUCCEEDED), ""
            log.info("deployment %s app %s: rolling back: %s", d.id, d.app, verdict.reason)
            run.advance(Trigger.CANCELLED if run.cancelled_by else Trigger.FAILED, verdict.reason)
            restoring = targets.previous.release_id
            if targets.release_command is not None and d.kind is Kind.PROMOTE and restoring:
                message = release_words.skipped_for_rollback(None, restoring)
                run.emit(APP_SOURCE, release_words.RELEASE_COMMAND_REASON, message)
        reason = run.reason
        verdict = await self._follower.follow(run, targets.previous, cancellable=False)
        if not verdict.succeeded:
            failed = f"{reason}; rollback failed: {verdict.reason}"
            return run.advance(Trigger.RESTORE_FAILED), failed
        restored = Trigger.CANCEL_RESTORED if run.cancelled_by else Trigger.RESTORED
        return run.advance(restored), reason

    async def _finish(self, run: Run, step: Transition, reason: str) -> None:
        assert step.outcome is not None, f"{step} is not a final transition"
        d = run.deployment
        # The Release service has the outcome and every event before the last is durable
        # before the end is written; neither of the two waits for the other.
        refused, _, _ = await asyncio.gather(
            self._reporter.outcome(d, step.outcome, reason),
            self._events.durable(d.id),
            run.writes_done(),
        )
        if refused:  # the cluster is as the outcome says; the Release service does not know
            reason = "; ".join(
                r for r in (reason, f"not recorded by the Release service: {refused}") if r
            )
        final = run.final_events(step)
        ended = await self._store.finish(
            run.id, step.outcome, reason, self._clock(), final, run.diagnostics
        )
        if final:
            self._hub.publish(run.id, final)
        run.ended = ended
        log.info(
            "deployment %s app %s: %s%s",
            d.id,
            d.app,
            step.outcome.value,
            f" ({reason})" if reason else "",
        )
