"""The calls the Deployer makes: what to deploy, a rollback copy, and how a deployment went."""

from __future__ import annotations

from dataclasses import replace

from relman_common.auth import Principal
from relman_common.errors import FailedPrecondition
from relman_common.locks import check_unlocked
from relman_common.manifest import Service
from relman_common.vocabulary import (
    DEPLOYMENT,
    MAX_ACTOR_LENGTH,
    RELEASE,
    check_id,
    validate_app_name,
    validate_text,
)

from relman_release.app import events, lookups
from relman_release.app.results import Reported
from relman_release.domain import composition
from relman_release.domain.builds import deployable_services
from relman_release.domain.deployments import judge_report
from relman_release.domain.model import App, Deployable, DeploymentReport, Release
from relman_release.domain.tokens import require_service
from relman_release.ports import Repository, UnitOfWork


def _deployable(repo: Repository, app: App, release: Release) -> Deployable:
    build = lookups.build_of(repo, app, release.build_id) if release.build_id else None
    manifest, services = deployable_services(release, build)
    active = lookups.active_of(repo, app, release)
    active_services: tuple[Service, ...] = ()
    if active is not None:
        active_build = lookups.build_of(repo, app, active.build_id) if active.build_id else None
        _, active_services = deployable_services(active, active_build, check_env=False)
    return Deployable(
        release=release,
        services=services,
        release_command=manifest.release,
        active=active,
        active_services=active_services,
        lock=app.current_lock(),
    )


def get_deployable(uow: UnitOfWork, app_name: str, release_id: str = "") -> Deployable:
    """A release (the latest by default) with its services, and the app's active release
    with its services."""
    validate_app_name(app_name)
    with uow.read() as repo:
        app = lookups.app_named(repo, app_name)
        if release_id:
            release = lookups.release_of(repo, app, release_id)
        else:
            latest = lookups.latest_of(repo, app)
            if latest is None:
                raise FailedPrecondition(f"app {app.name} has no releases")
            release = latest
        return _deployable(repo, app, release)


def create_rollback_release(
    uow: UnitOfWork, app_name: str, release_id: str, force: bool, actor: str
) -> Deployable:
    """A copy of an old release (its build and env), described ``rollback to R...``, once
    it is known to be deployable, and unless the app is locked (and not ``force``): the
    Deployer's own lock guard, run here so that a refused rollback leaves no copy behind."""
    validate_app_name(app_name)
    with uow.write() as repo:
        app = lookups.app_named(repo, app_name, lock=True)
        check_unlocked(app.current_lock(), force=force)
        old = lookups.release_of(repo, app, release_id)
        _deployable(repo, app, old)  # refuse before making a copy that cannot be deployed
        description = composition.rollback_description(old.id)
        copy = lookups.new_release(uow, repo, app, old.build_id, old.env, description, actor)
        return _deployable(repo, app, copy)


def report_deployment(
    uow: UnitOfWork, caller: Principal | None, report: DeploymentReport
) -> Reported:
    """Records what a Deployer says about a deployment (see domain.deployments); only a
    Deployer may say it."""
    require_service(caller, "report deployments")
    validate_app_name(report.app)
    check_id(DEPLOYMENT, report.deployment_id, "deployment_id")
    check_id(RELEASE, report.release_id, "release_id")
    validate_text("reason", report.reason, max_length=4000, field="reason")
    validate_text("actor", report.actor, max_length=MAX_ACTOR_LENGTH, field="actor")
    with uow.write() as repo:
        app = lookups.app_named(repo, report.app, lock=True)
        release = lookups.release_of(repo, app, report.release_id)
        effect = judge_report(app, release, report)
        if effect.becomes_current:
            repo.set_current_deployment(app.name, report.deployment_id, report.started)
        if effect.record:
            repo.record_outcome(release.id, report.deployment_id, report.outcome)
            events.deployment_changed(uow, repo, app, report)
            release = replace(
                release,
                last_deployment_id=report.deployment_id,
                last_deployment_outcome=report.outcome,
            )
        if effect.activate:
            previous = app.active_release_id or app.previous_active_release_id
            repo.set_active_release(app.name, release.id, previous)
            app = replace(app, active_release_id=release.id, previous_active_release_id=previous)
        return Reported(current=effect.current, release=lookups.with_status(release, app))
