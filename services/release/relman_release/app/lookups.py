"""Reads every use-case shares: an app, a release or a build of it, or NotFound; and the new
release every write that makes one goes through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from relman_common.errors import APP_NOT_FOUND, BUILD_NOT_FOUND, RELEASE_NOT_FOUND, NotFound
from relman_common.lifecycle import release_status
from relman_common.vocabulary import BUILD, RELEASE, check_id, new_id

from relman_release.domain.model import App, Build, Release
from relman_release.ports import Repository, UnitOfWork


def app_named(repo: Repository, name: str, lock: bool = False, field: str = "app") -> App:
    app = repo.lock_app(name) if lock else repo.get_app(name)
    if app is None:
        raise NotFound(f"app not found: {name}", reason=APP_NOT_FOUND, field=field)
    return app


def release_of(repo: Repository, app: App, release_id: str, field: str = "release_id") -> Release:
    """A release of ``app`` (its status filled in), or NotFound."""
    check_id(RELEASE, release_id, field)
    release = repo.find_release(release_id)
    if release is None:
        raise NotFound(f"release not found: {release_id}", reason=RELEASE_NOT_FOUND, field=field)
    if release.app != app.name:
        raise NotFound(
            f"release {release_id} not found in app {app.name}",
            reason=RELEASE_NOT_FOUND,
            field=field,
        )
    return with_status(release, app)


def build_of(repo: Repository, app: App, build_id: str, field: str = "build_id") -> Build:
    check_id(BUILD, build_id, field)
    build = repo.find_build(build_id)
    if build is None:
        raise NotFound(f"build not found: {build_id}", reason=BUILD_NOT_FOUND, field=field)
    if build.app != app.name:
        raise NotFound(
            f"build {build_id} not found in app {app.name}", reason=BUILD_NOT_FOUND, field=field
        )
    return build


def latest_of(repo: Repository, app: App) -> Release | None:
    return release_of(repo, app, app.latest_release_id) if app.latest_release_id else None


def active_of(repo: Repository, app: App, known: Release | None = None) -> Release | None:
    """The app's active release; ``known`` (a release already read in this transaction, e.g.
    the latest) is reused instead of being read again when it is the active one."""
    if not app.active_release_id:
        return None
    if known is not None and known.id == app.active_release_id:
        return known
    return release_of(repo, app, app.active_release_id)


def with_status(release: Release, app: App) -> Release:
    status = release_status(release.id, app.active_release_id, release.last_deployment_outcome)
    return replace(release, status=status)


def new_release(
    uow: UnitOfWork,
    repo: Repository,
    app: App,
    build_id: str,
    env: Mapping[str, str],
    description: str,
    actor: str,
) -> Release:
    """Stores a new release of ``app``; it becomes the app's latest."""
    release = Release(
        id=new_id(RELEASE),
        app=app.name,
        build_id=build_id,
        env=dict(sorted(env.items())),
        description=description,
        created=uow.now(),
        actor=actor,
    )
    repo.add_release(release)
    return with_status(release, replace(app, latest_release_id=release.id))
