"""The Deployer's use-cases: promote, roll back, cancel, watch, read and list deployments.

One :class:`Orchestrator` per Deployer process. Each deployment runs as an asyncio task of its
own (:mod:`.app.runner`), independent of any client stream; its events go through the durable
event log (:mod:`.events`); its lease is renewed, and orphans taken over, by
:mod:`.app.leases`; what the Release service must know is sent by :mod:`.app.reporting`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from relman_common.clock import Clock, utcnow
from relman_common.db import is_postgres
from relman_common.lifecycle import Kind
from relman_common.locks import check_unlocked
from relman_common.request_ids import DuplicateRequest, RequestKey, fingerprint
from relman_common.vocabulary import (
    DEPLOYMENT,
    RELEASE,
    check_id,
    new_id,
    page_limit,
    validate_app_name,
)

from relman_deployer.app.leases import LeaseKeeper
from relman_deployer.app.reporting import Reporter
from relman_deployer.app.rollout import RolloutFollower
from relman_deployer.app.run import Run
from relman_deployer.app.runner import Runner, Targets, app_spec
from relman_deployer.backends.base import Backend
from relman_deployer.domain.diagnostics import Diagnostics
from relman_deployer.domain.failfast import DEFAULT_SCHEDULING_GRACE_SECONDS
from relman_deployer.domain.guards import app_busy, check_promotable, check_timeout
from relman_deployer.domain.model import Deployable, Deployment, DeploymentEvent
from relman_deployer.domain.plan import PromotionPlan, plan_promotion
from relman_deployer.domain.policy import DEFAULT_CRASHLOOP_THRESHOLD, DEFAULT_TIMEOUT_SECONDS
from relman_deployer.events import EventHub, EventLog, watch
from relman_deployer.events.listen import EventListener
from relman_deployer.release_client import ReleaseClient
from relman_deployer.store.repository import DeploymentStore

log = logging.getLogger("relman.deployer")

# How long stop() waits for reports to the Release service still in flight.
REPORT_GRACE_SECONDS = 5.0


def instance_id() -> str:
    """A name for this Deployer process that no other process shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class DeployerConfig:
    owner: str
    lease_ttl: float = 15.0
    crashloop_threshold: int = DEFAULT_CRASHLOOP_THRESHOLD
    scheduling_grace: float = DEFAULT_SCHEDULING_GRACE_SECONDS
    default_timeout: int = DEFAULT_TIMEOUT_SECONDS


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
        self._reporter = Reporter(releases)
        follower = RolloutFollower(
            backend,
            clock,
            config.crashloop_threshold,
            scheduling_grace=config.scheduling_grace,
            diagnostics=store,
        )
        self._runner = Runner(
            store, self.events, self.hub, follower, self._reporter, releases, clock
        )
        self.leases = LeaseKeeper(
            store, config.owner, config.lease_ttl, clock, self._runs, self._launch
        )
        # On PostgreSQL, events other Deployers write reach this one's watchers at once.
        self.listener = EventListener(store, self.hub) if is_postgres(store.engine) else None

    # Lifecycle.

    async def start(self) -> None:
        self.events.start()
        if self.listener is not None:
            self.listener.start()
        self.leases.start()

    async def stop(self) -> None:
        """Stop working without ending anything: running deployments stay ``running`` and their
        leases are handed off, so another instance, or this one restarted, resumes them at once
        instead of after the lease TTL."""
        await self.leases.stop()
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._reporter.settle(REPORT_GRACE_SECONDS)
        await self.events.stop()
        if self.listener is not None:
            await self.listener.stop()
        await self.leases.hand_off()

    async def resume_orphans(self) -> list[str]:
        return await self.leases.resume_orphans()

    async def renew_leases(self) -> None:
        await self.leases.renew()

    # Requests.

    async def promote(
        self,
        app: str,
        release_id: str,
        *,
        force: bool,
        timeout_seconds: int,
        actor: str,
        request: RequestKey | None = None,
    ) -> Deployment:
        """Start a deployment of ``release_id`` (the latest when empty). With ``request`` (a
        client request id), a call whose id started a deployment before gets that deployment
        back, and nothing starts."""
        validate_app_name(app)
        check_id(RELEASE, release_id, "release_id", required=False)
        check_timeout(timeout_seconds)
        done = await self._recalled(request)
        if done is not None:
            return done
        deployable = await self.releases.get_deployable(app, release_id, actor)
        overridden = check_promotable(deployable, force=force)
        return await self._start(
            deployable,
            timeout_seconds,
            actor,
            Kind.PROMOTE,
            "",
            request,
            lock_override=overridden,
        )

    async def plan(
        self, app: str, release_id: str, *, force: bool, timeout_seconds: int, actor: str
    ) -> PromotionPlan:
        """What :meth:`promote` with these arguments would change, against the active
        release: reads only (the Release service's Deployable, this store, the backend's dry
        run); no lease, deployment, event or report."""
        validate_app_name(app)
        check_id(RELEASE, release_id, "release_id", required=False)
        check_timeout(timeout_seconds)
        deployable = await self.releases.get_deployable(app, release_id, actor)
        check_promotable(deployable, force=force)
        release = deployable.release
        deadline = timeout_seconds or self.config.default_timeout
        objects = await self.backend.plan(
            app_spec(release.app, release, deployable.services, deadline)
        )
        running = await self.store.running_of_app(app)
        warnings = (str(app_busy(running)),) if running is not None else ()
        return plan_promotion(
            deployable, backend=self.backend.name, objects=objects, warnings=warnings
        )

    async def rollback(
        self,
        app: str,
        release_id: str,
        *,
        timeout_seconds: int,
        actor: str,
        request: RequestKey | None = None,
        force: bool = False,
    ) -> Deployment:
        """Deploy a copy of ``release_id``; ``request`` as for :meth:`promote` (the copy is
        made once per request id too). A locked app is refused unless ``force``."""
        validate_app_name(app)
        check_id(RELEASE, release_id, "release_id")
        check_timeout(timeout_seconds)
        done = await self._recalled(request)
        if done is not None:
            return done
        running = await self.store.running_of_app(app)
        if running is not None:
            raise app_busy(running)  # before making a copy that would not be deployed
        # The copy's own request id: one per (caller, id), as the Release service sees every
        # copy come from the Deployer.
        copy_id = fingerprint(request.key.encode())[:40] if request is not None else ""
        # The Release service refuses a locked app unless forced before it makes the copy
        # (with the same guard); the copy says which lock a forced rollback overrides.
        copy = await self.releases.create_rollback_release(
            app, release_id, actor, copy_id, force=force
        )
        overridden = check_unlocked(copy.lock, force=force)
        return await self._start(
            copy,
            timeout_seconds,
            actor,
            Kind.ROLLBACK,
            release_id,
            request,
            lock_override=overridden,
        )

    async def _recalled(self, request: RequestKey | None) -> Deployment | None:
        """The deployment a call with ``request``'s id started or cancelled, if any."""
        if request is None:
            return None
        deployment_id = await self.store.recall_request(request)
        return await self.store.get(deployment_id) if deployment_id is not None else None

    async def cancel(self, app: str, actor: str, request: RequestKey | None = None) -> Deployment:
        validate_app_name(app)
        done = await self._recalled(request)
        if done is not None:
            return done
        try:
            deployment = await self.store.request_cancel(app, actor, request, self._clock())
        except DuplicateRequest:
            return await self._after_duplicate(request)
        run = self._runs.get(deployment.id)
        if run is not None:
            run.cancel(deployment.cancelled_by)
        log.info("deployment %s app %s: cancel requested by %s", deployment.id, app, actor)
        return deployment

    def watch(
        self, deployment_id: str, after_seq: int
    ) -> AsyncIterator[Deployment | DeploymentEvent]:
        check_id(DEPLOYMENT, deployment_id, "deployment_id")
        return watch(self.store, self.hub, deployment_id, max(after_seq, 0))

    async def get(self, deployment_id: str) -> Deployment:
        check_id(DEPLOYMENT, deployment_id, "id")
        return await self.store.get(deployment_id)

    async def get_with_diagnostics(
        self, deployment_id: str
    ) -> tuple[Deployment, Diagnostics | None]:
        """The deployment and the last diagnostics recorded of its rollout (None: none yet)."""
        deployment = await self.get(deployment_id)
        return deployment, await self.store.diagnostics(deployment_id)

    async def list(self, app: str, limit: int, page_token: str) -> tuple[list[Deployment], str]:
        if app:
            validate_app_name(app)
        return await self.store.list_deployments(app, page_limit(limit), page_token)

    # Starting and running.

    async def _after_duplicate(self, request: RequestKey | None) -> Deployment:
        """The deployment of a concurrent call with the same request id, which won."""
        done = await self._recalled(request)
        if done is None:
            raise RuntimeError("a duplicate request id left no recorded deployment")
        return done

    async def _start(
        self,
        deployable: Deployable,
        timeout_seconds: int,
        actor: str,
        kind: Kind,
        of: str,
        request: RequestKey | None = None,
        *,
        lock_override: str = "",
    ) -> Deployment:
        release = deployable.release
        deadline = timeout_seconds or self.config.default_timeout
        targets = Targets(
            release=app_spec(release.app, release, deployable.services, deadline),
            previous=app_spec(release.app, deployable.active, deployable.active_services, deadline),
            release_command=deployable.release_command,
        )
        deployment = Deployment(
            id=new_id(DEPLOYMENT),
            app=release.app,
            release_id=release.id,
            previous_release_id=deployable.active.id if deployable.active else "",
            actor=actor,
            started=self._clock(),
            kind=kind,
            rollback_of=of,
            timeout_seconds=deadline,
            lock_override=lock_override,
        )
        try:
            await self.store.start(deployment, self.config.owner, self.leases.until(), request)
        except DuplicateRequest:
            return await self._after_duplicate(request)
        log.info(
            "deployment %s app %s: started %s of %s by %s%s",
            deployment.id,
            deployment.app,
            kind.value,
            release.id,
            actor,
            f" ({lock_override})" if lock_override else "",
        )
        self._launch(deployment, targets)
        return deployment

    def _launch(self, deployment: Deployment, targets: Targets | None = None) -> None:
        run = Run(deployment, self.events, self._clock)
        self._runs[deployment.id] = run
        self.hub.open(deployment.id, deployment.last_seq, deployment)
        run.task = asyncio.create_task(self._execute(run, targets), name=f"deploy-{deployment.id}")

    async def _execute(self, run: Run, targets: Targets | None) -> None:
        try:
            await self._runner.execute(run, targets)
        finally:
            self._runs.pop(run.id, None)
            self.hub.close(run.id, run.ended)
