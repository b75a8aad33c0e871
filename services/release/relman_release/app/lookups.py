"""Reads every use-case shares: an app, a release or a build of it, or NotFound; and the new
release every write that makes one goes through."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TypeVar

from relman_common.errors import (
    APP_NOT_FOUND,
    BUILD_NOT_FOUND,
    PRUNED,
    RELEASE_NOT_FOUND,
    NotFound,
)
from relman_common.lifecycle import release_status
from relman_common.locks import rfc3339
from relman_common.vocabulary import BUILD, RELEASE, check_id, new_id, page_limit, validate_app_name

from relman_release.app import events
from relman_release.app.results import Listing
from relman_release.domain.model import App, Build, Page, Release
from relman_release.domain.paging import decode_token, encode_token
from relman_release.ports import Repository, UnitOfWork

T = TypeVar("T")


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
        _unless_pruned(repo, "release", release_id, field)
    found = _owned(app, release_id, release, RELEASE_NOT_FOUND, field)
    return with_status(found, app)


def build_of(repo: Repository, app: App, build_id: str, field: str = "build_id") -> Build:
    """A build of ``app``, or NotFound."""
    check_id(BUILD, build_id, field)
    build = repo.find_build(build_id)
    if build is None:
        _unless_pruned(repo, "build", build_id, field)
    return _owned(app, build_id, build, BUILD_NOT_FOUND, field)


def _unless_pruned(repo: Repository, what: str, wanted: str, field: str) -> None:
    """NotFound (reason PRUNED) saying when ``wanted`` was pruned, if it was."""
    pruned = repo.find_pruned(wanted)
    if pruned is not None:
        app, when = pruned
        raise NotFound(
            f"{what} {wanted} of app {app} was pruned at {rfc3339(when)} (release retention)",
            reason=PRUNED,
            field=field,
        )


Owned = TypeVar("Owned", Release, Build)


def _owned(app: App, wanted: str, found: Owned | None, reason: str, field: str) -> Owned:
    """``found`` when it exists and belongs to ``app``; NotFound worded by kind otherwise."""
    what = "release" if reason == RELEASE_NOT_FOUND else "build"
    if found is None:
        raise NotFound(f"{what} not found: {wanted}", reason=reason, field=field)
    if found.app != app.name:
        raise NotFound(f"{what} {wanted} not found in app {app.name}", reason=reason, field=field)
    return found


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
    release_id: str = "",
) -> Release:
    """Stores a new release of ``app`` (with ``release_id`` when it was chosen before); it
    becomes the app's latest."""
    release = Release(
        id=release_id or new_id(RELEASE),
        app=app.name,
        build_id=build_id,
        env=dict(sorted(env.items())),
        description=description,
        created=uow.now(),
        actor=actor,
    )
    repo.add_release(release)
    events.release_created(uow, repo, app, release)
    app = replace(app, latest_release_id=release.id)
    if uow.keep_releases:
        from relman_release.app.retention import prune_in  # retention reads releases

        prune_in(uow, repo, app, uow.keep_releases, actor)
    return with_status(release, app)


def listing(
    uow: UnitOfWork,
    kind: str,
    app_name: str,
    limit: int,
    page_token: str,
    fetch: Callable[[Repository, App, int, int | None], Page[T]],
) -> Listing[T]:
    """One page of an app's ``kind`` listing (builds, releases), newest first: ``fetch(repo,
    app, size, before)`` reads it; ``page_token`` continues a previous page."""
    validate_app_name(app_name)
    size = page_limit(limit)
    before = decode_token(kind, app_name, page_token)
    with uow.read() as repo:
        page = fetch(repo, app_named(repo, app_name), size, before)
    cursor = page.next_cursor
    token = "" if cursor is None else encode_token(kind, app_name, cursor)
    return Listing(items=page.items, next_page_token=token)
