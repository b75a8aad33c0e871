"""Runs deployments: each one an asyncio task of its own, independent of any client stream.

One :class:`Orchestrator` per Deployer process. It starts deployments (guards, lease, row),
drives the backend through the rollout and, when the rollout fails or is cancelled, through the
rollback, writes every event through the :class:`~relman_deployer.events.EventLog`, keeps the
app's lease alive while it works, and resumes deployments whose owner went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from relman_common.clock import Clock, utcnow
from relman_common.errors import RelmanError
from relman_common.ids import DEPLOYMENT, new_id

from relman_deployer.backends.base import AppSpec, Backend, BackendEvent, Observation
from relman_deployer.domain.guards import (
    app_busy,
    check_app_name,
    check_promotable,
    check_timeout,
)
from relman_deployer.domain.manifest import app_spec, empty_spec
from relman_deployer.domain.model import (
    APP_SOURCE,
    STATUS_CHANGE,
    AppStatus,
    Deployable,
    Deployment,
    DeploymentEvent,
    Kind,
    Outcome,
    Phase,
    status_message,
)
from relman_deployer.domain.policy import (
    DEFAULT_CRASHLOOP_THRESHOLD,
    DEFAULT_TIMEOUT_SECONDS,
    RolloutPolicy,
    Verdict,
)
from relman_deployer.events import EventHub, EventLog, watch
from relman_deployer.release_client import ReleaseClient
from relman_deployer.store.repository import DeploymentStore

log = logging.getLogger("relman.deployer")

# How long to wait for a backend's first snapshot before applying anyway.
FIRST_OBSERVATION_SECONDS = 5.0
# How long stop() waits for outcome writes to the Release service still in flight.
RECORD_GRACE_SECONDS = 5.0


def instance_id() -> str:
    """A name for this Deployer process that no other process shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class DeployerConfig:
    owner: str
    lease_ttl: float = 15.0
    crashloop_threshold: int = DEFAULT_CRASHLOOP_THRESHOLD
    default_timeout: int = DEFAULT_TIMEOUT_SECONDS


@dataclass(frozen=True)
class Targets:
    """What a deployment moves the app to, and what it rolls back to."""

    release: AppSpec
    previous: AppSpec


class _Cancelled:
    """Put into a run's observation queue when a cancellation is requested."""


_CANCELLED = _Cancelled()


class Run:
    """The in-memory side of one running deployment: its next seq, cancellation, observations."""

    def __init__(self, deployment: Deployment, log_: EventLog, clock: Clock) -> None:
        self.deployment = deployment
        self.seq = deployment.last_seq
        self.cancelled_by = deployment.cancelled_by
        # App status messages already written (each transition happens at most once).
        self.statuses: set[str] = set()
        # The release of the backend's latest status snapshot.
        self.seen_release: str | None = None
        self.queue: asyncio.Queue[Observation | _Cancelled | BaseException] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        # The deployment as stored when it ended (None while it runs).
        self.ended: Deployment | None = None
        self._log = log_
        self._clock = clock

    @property
    def id(self) -> str:
        return self.deployment.id

    def emit(self, source: str, reason: str, message: str) -> None:
        self.seq += 1
        event = DeploymentEvent(self.id, self.seq, self._clock(), source, reason, message)
        self._log.append(event)

    def emit_backend(self, event: BackendEvent) -> None:
        self.seq += 1
        self._log.append(
            DeploymentEvent(
                self.id, self.seq, event.time, event.source, event.reason, event.message
            )
        )

    def status(self, before: AppStatus, after: AppStatus) -> None:
        message = status_message(before, after)
        if message in self.statuses:
            return  # written before this deployment was resumed
        self.statuses.add(message)
        log.info("deployment %s app %s: %s", self.id, self.deployment.app, message)
        self.emit(APP_SOURCE, STATUS_CHANGE, message)

    def cancel(self, actor: str) -> None:
        if not self.cancelled_by:
            self.cancelled_by = actor
            self.queue.put_nowait(_CANCELLED)


class LeaseLost(Exception):
    """Another instance took this deployment's lease over."""


class Orchestrator:
    def __init__(
        self,
        store: DeploymentStore,
        backend: Backend,
        releases: ReleaseClient,
        config: DeployerConfig,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.backend = backend
        self.releases = releases
        self.config = config
        self.hub = EventHub()
        self.events = EventLog(store, self.hub)
        self._clock = clock
        self._runs: dict[str, Run] = {}
        # app -> the task writing its latest outcome to the Release service
        self._recording: dict[str, asyncio.Task[None]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._stopping = False

    # Lifecycle.

    async def start(self) -> None:
        self.events.start()
        self._background = [
            asyncio.create_task(self._resume_forever(), name="resume-orphans"),
            asyncio.create_task(self._renew_forever(), name="renew-leases"),
        ]

    async def stop(self) -> None:
        """Stop working without ending anything: running deployments stay ``running`` and their
        leases are handed off (expired now), so another instance, or this one restarted, resumes
        them at once instead of after the lease TTL."""
        self._stopping = True
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._settle_recordings(RECORD_GRACE_SECONDS)
        await self.events.stop()
        try:
            handed = await self.store.hand_off(self.config.owner, self._clock())
        except Exception:
            log.exception("could not hand off leases; they expire in %ss", self.config.lease_ttl)
        else:
            if handed:
                log.info("handed off %d running deployment(s)", handed)

    async def _settle_recordings(self, grace: float) -> None:
        """Give outcome writes still in flight ``grace`` seconds to land, then drop them."""
        pending = list(self._recording.values())
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            log.error("stopped with %d deployment outcome(s) not recorded", len(late))
        await asyncio.gather(*pending, return_exceptions=True)

    # Requests.

    async def promote(
        self, app: str, release_id: str, *, force: bool, timeout_seconds: int, actor: str
    ) -> Deployment:
        check_app_name(app)
        check_timeout(timeout_seconds)
        deployable = await self.releases.get_deployable(app, release_id, actor)
        check_promotable(deployable, force=force)
        return await self._start(deployable, timeout_seconds, actor, Kind.PROMOTE, "")

    async def rollback(
        self, app: str, release_id: str, *, timeout_seconds: int, actor: str
    ) -> Deployment:
        check_app_name(app)
        check_timeout(timeout_seconds)
        # Check the copy can be deployed before making it.
        original = await self.releases.get_deployable(app, release_id, actor)
        check_promotable(original, force=True)
        running = await self.store.running_of_app(app)
        if running is not None:
            raise app_busy(running)  # before making a copy that would not be deployed
        copy = await self.releases.create_rollback_release(app, original.release.id, actor)
        deployable = await self.releases.get_deployable(app, copy.id, actor)
        check_promotable(deployable, force=True)
        return await self._start(
            deployable, timeout_seconds, actor, Kind.ROLLBACK, original.release.id
        )

    async def cancel(self, app: str, actor: str) -> Deployment:
        check_app_name(app)
        deployment = await self.store.request_cancel(app, actor)
        run = self._runs.get(deployment.id)
        if run is not None:
            run.cancel(deployment.cancelled_by)
        log.info("deployment %s app %s: cancel requested by %s", deployment.id, app, actor)
        return deployment

    def watch(
        self, deployment_id: str, after_seq: int
    ) -> AsyncIterator[Deployment | DeploymentEvent]:
        return watch(self.store, self.hub, deployment_id, after_seq)

    # Starting and running.

    async def _start(
        self, deployable: Deployable, timeout_seconds: int, actor: str, kind: Kind, of: str
    ) -> Deployment:
        release = deployable.release
        targets = Targets(
            release=app_spec(release, deployable.build),
            previous=await self._previous_spec(deployable, actor, retry=False),
        )
        now = self._clock()
        deployment = Deployment(
            id=new_id(DEPLOYMENT),
            app=release.app,
            release_id=release.id,
            previous_release_id=deployable.active.id if deployable.active else "",
            actor=actor,
            started=now,
            kind=kind,
            rollback_of=of,
            timeout_seconds=timeout_seconds or self.config.default_timeout,
        )
        await self.store.start(deployment, self.config.owner, self._lease_until())
        log.info(
            "deployment %s app %s: started %s of %s by %s",
            deployment.id,
            deployment.app,
            kind.value,
            release.id,
            actor,
        )
        self._launch(deployment, targets)
        return deployment

    async def _previous_spec(self, deployable: Deployable, actor: str, *, retry: bool) -> AppSpec:
        active = deployable.active
        if active is None:
            return empty_spec(deployable.release.app)
        if active.id == deployable.release.id:
            return app_spec(deployable.release, deployable.build)
        previous = await self.releases.get_deployable(active.app, active.id, actor, retry=retry)
        return app_spec(previous.release, previous.build)

    def _launch(self, deployment: Deployment, targets: Targets | None) -> None:
        run = Run(deployment, self.events, self._clock)
        self._runs[deployment.id] = run
        self.hub.open(deployment.id, deployment.last_seq)
        run.task = asyncio.create_task(self._execute(run, targets), name=f"deploy-{deployment.id}")

    async def _execute(self, run: Run, targets: Targets | None) -> None:
        d = run.deployment
        running: asyncio.Task[None] | None = None
        try:
            if targets is None:  # resumed: ask the Release service again
                targets = await self._targets_of(d)
            # The rollout need not wait for the ``running`` outcome to be written.
            sent: list[bool] = []
            running = self._record_soon(d, Outcome.RUNNING, on_send=lambda: sent.append(True))
            outcome, reason = await self._drive(run, targets)
            if not running.done() and not sent:
                # Still waiting for its turn (the Release service is busy): the final outcome
                # replaces it, so it need not be sent at all.
                running.cancel()
            # Before the deployment ends (and its stream with it): a client that saw the end
            # finds every write of it done, and a crash before this point resumes it.
            await self._record_soon(d, outcome)
            await self._finish(run, outcome, reason)
        except asyncio.CancelledError:
            # Shutting down, or the lease was lost: the deployment stays running for whoever
            # holds (or takes) the lease next.
            if running is not None:
                running.cancel()
            log.info("deployment %s app %s: stopped running here", d.id, d.app)
            raise
        except Exception as err:
            reason = str(err) if isinstance(err, RelmanError) else f"internal error: {err!r}"
            log.exception("deployment %s app %s failed: %s", d.id, d.app, reason)
            try:
                await self._record_soon(d, Outcome.FAILED)
                await self._finish(run, Outcome.FAILED, reason)
            except Exception:
                log.exception("deployment %s: could not record its failure", d.id)
        finally:
            self._runs.pop(d.id, None)
            self.hub.close(d.id, run.ended)

    async def _targets_of(self, d: Deployment) -> Targets:
        deployable = await self.releases.get_deployable(d.app, d.release_id, d.actor, retry=True)
        if d.previous_release_id:
            previous = await self.releases.get_deployable(
                d.app, d.previous_release_id, d.actor, retry=True
            )
            previous_spec = app_spec(previous.release, previous.build)
        else:
            previous_spec = empty_spec(d.app)
        return Targets(
            release=app_spec(deployable.release, deployable.build), previous=previous_spec
        )

    def _record_soon(
        self, d: Deployment, outcome: Outcome, on_send: Callable[[], None] | None = None
    ) -> asyncio.Task[None]:
        """Record ``outcome`` in a task of its own, after the outcomes recorded before for the
        same app (so a late ``running`` never overwrites the final outcome)."""
        before = self._recording.get(d.app)

        async def record() -> None:
            if before is not None and not before.done():
                await asyncio.wait([before])
            await self._record(d, outcome, on_send)

        task = asyncio.create_task(record(), name=f"record-{d.id}-{outcome.value}")
        self._recording[d.app] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._recording.get(d.app) is done:
                del self._recording[d.app]
            if not done.cancelled() and done.exception() is not None:
                log.error(
                    "deployment %s: recording %s failed: %r", d.id, outcome.value, done.exception()
                )

        task.add_done_callback(forget)
        return task

    async def _record(
        self, d: Deployment, outcome: Outcome, on_send: Callable[[], None] | None = None
    ) -> None:
        """Tell the Release service (retrying while it is down); other errors are logged."""
        try:
            await self.releases.record_outcome(
                d.app, d.release_id, d.id, outcome, d.actor, on_send=on_send
            )
        except RelmanError as err:
            log.error("deployment %s: recording %s failed: %s", d.id, outcome.value, err)

    async def _drive(self, run: Run, targets: Targets) -> tuple[Outcome, str]:
        """Roll out, and roll back if that fails; the outcome and its reason."""
        d = run.deployment
        if d.last_seq:
            run.statuses = await self.store.status_messages(d.id)
        if d.phase is Phase.ROLLING_OUT:
            run.status(AppStatus.RUNNING, AppStatus.PENDING)
            if run.cancelled_by:
                verdict = Verdict(succeeded=False, reason=f"cancelled by {run.cancelled_by}")
            else:
                verdict = await self._rollout(
                    run,
                    targets.release,
                    d.timeout_seconds,
                    cancellable=True,
                    after_apply=(AppStatus.PENDING, AppStatus.UPDATING),
                )
            if verdict.succeeded:
                await self.releases.mark_release_active(d.app, d.release_id, d.id, d.actor)
                run.status(AppStatus.UPDATING, AppStatus.RUNNING)
                return Outcome.SUCCEEDED, ""
            reason = verdict.reason
            await self.store.set_phase(d.id, Phase.ROLLING_BACK, reason)
            log.info("deployment %s app %s: rolling back: %s", d.id, d.app, reason)
            run.status(AppStatus.UPDATING, AppStatus.ROLLBACK)
        else:
            reason = d.reason
            run.status(AppStatus.UPDATING, AppStatus.ROLLBACK)
        verdict = await self._rollout(run, targets.previous, d.timeout_seconds, cancellable=False)
        if not verdict.succeeded:
            return Outcome.FAILED, f"{reason}; rollback failed: {verdict.reason}"
        run.status(AppStatus.ROLLBACK, AppStatus.RUNNING)
        return (Outcome.CANCELLED if run.cancelled_by else Outcome.ROLLED_BACK), reason

    async def _rollout(
        self,
        run: Run,
        spec: AppSpec,
        timeout_seconds: int,
        *,
        cancellable: bool,
        after_apply: tuple[AppStatus, AppStatus] | None = None,
    ) -> Verdict:
        """Apply ``spec`` and follow the backend until the policy decides.

        ``timeout_seconds`` becomes the Deployments' progress deadline: the backend's
        controller judges it, the policy reads that verdict (with a backstop of its own).

        ``after_apply`` is the app status change written once the backend reports on the new
        release (after the events ``apply`` caused, as the seed's listing shows), or, at the
        latest, when the verdict is in.
        """
        pump = asyncio.create_task(self._pump(run), name=f"observe-{run.id}")
        try:
            # The snapshot from before apply counts too: it is complete already when the app
            # runs this release (a re-deploy, or a resumed rollout that had finished).
            pending: list[Observation | _Cancelled | BaseException] = []
            first = await self._first_observation(run)
            if first is not None:
                pending.append(first)
            await self.backend.apply(replace(spec, progress_deadline_seconds=timeout_seconds))
            policy = RolloutPolicy(
                spec.release_id,
                timeout_seconds=timeout_seconds,
                crashloop_threshold=self.config.crashloop_threshold,
                now=self._clock(),
            )
            while True:
                verdict = await self._next_verdict(run, policy, pending, cancellable)
                if after_apply is not None and (
                    verdict is not None or run.seen_release == spec.release_id
                ):
                    run.status(*after_apply)
                    after_apply = None
                if verdict is not None:
                    return verdict
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._drain_observations(run)

    async def _next_verdict(
        self,
        run: Run,
        policy: RolloutPolicy,
        pending: list[Observation | _Cancelled | BaseException],
        cancellable: bool,
    ) -> Verdict | None:
        """Take one observation (or time out) and judge it."""
        if cancellable and run.cancelled_by:
            return Verdict(succeeded=False, reason=f"cancelled by {run.cancelled_by}")
        if pending:
            item = pending.pop()
        else:
            timeout = max(policy.seconds_left(self._clock()), 0.001)
            try:
                item = await asyncio.wait_for(run.queue.get(), timeout=timeout)
            except TimeoutError:
                return policy.check(self._clock())
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, _Cancelled):
            return None
        if isinstance(item, BackendEvent):
            run.emit_backend(item)
            return None
        run.seen_release = item.release_id
        return policy.observe(item, self._clock())

    async def _first_observation(self, run: Run) -> Observation | _Cancelled | BaseException | None:
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

    @staticmethod
    def _drain_observations(run: Run) -> None:
        """Forget what the last phase's stream left behind (keeping a pending cancellation)."""
        while not run.queue.empty():
            item = run.queue.get_nowait()
            if isinstance(item, _Cancelled):
                run.queue.put_nowait(item)
                return

    async def _finish(self, run: Run, outcome: Outcome, reason: str) -> None:
        await self.events.flush()  # every event is durable before the outcome is
        d = await self.store.finish(run.id, outcome, reason, self._clock())
        run.ended = d
        log.info(
            "deployment %s app %s: %s%s",
            d.id,
            d.app,
            outcome.value,
            f" ({reason})" if reason else "",
        )

    # Leases.

    def _lease_until(self) -> datetime:
        return self._clock() + timedelta(seconds=self.config.lease_ttl)

    async def _renew_forever(self) -> None:
        """Every ttl/3, renew all of this instance's leases in one transaction; pick up
        cancellations requested through other instances; stop runs whose lease was lost."""
        while True:
            await asyncio.sleep(self.config.lease_ttl / 3)
            try:
                await self.renew_leases()
            except Exception:
                log.exception("renewing leases failed")

    async def renew_leases(self) -> None:
        runs = dict(self._runs)
        held = await self.store.renew(self.config.owner, runs.keys(), self._lease_until())
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

    # Resuming.

    async def resume_orphans(self) -> list[str]:
        """Take over running deployments whose owner is gone; the ids resumed."""
        if self._stopping:
            return []
        now = self._clock()
        resumed: list[str] = []
        for orphan in await self.store.orphans(now):
            if orphan.id in self._runs:
                continue
            claimed = await self.store.claim(orphan.id, self.config.owner, now, self._lease_until())
            if claimed is None:
                continue
            log.info(
                "deployment %s app %s: resuming (%s, last event %d)",
                claimed.id,
                claimed.app,
                claimed.phase.value,
                claimed.last_seq,
            )
            self._launch(claimed, None)
            resumed.append(claimed.id)
        return resumed

    async def _resume_forever(self) -> None:
        while True:
            try:
                await self.resume_orphans()
            except Exception:
                log.exception("looking for deployments to resume failed")
            await asyncio.sleep(self.config.lease_ttl)
