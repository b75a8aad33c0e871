"""Releases: create (explicitly, or from other releases), read, list, compare."""

from __future__ import annotations

from collections.abc import Mapping

from relman_common.errors import (
    BUILD_NOT_FOUND,
    NO_ACTIVE_RELEASE,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from relman_common.vocabulary import (
    BUILD,
    RELEASE,
    check_id,
    validate_app_name,
    validate_env,
    validate_text,
)

from relman_release.app import lookups
from relman_release.app.results import Listing, ReleaseDiff
from relman_release.domain import composition
from relman_release.domain.env import diff_env
from relman_release.domain.model import App, Page, Release
from relman_release.ports import Repository, UnitOfWork


def create_release(
    uow: UnitOfWork,
    app_name: str,
    build_id: str,
    env: Mapping[str, str],
    description: str,
    actor: str,
) -> Release:
    """A release of an explicit build and env. Only an app's first release may have no build."""
    validate_app_name(app_name)
    check_id(BUILD, build_id, "build_id", required=False)
    validate_env(env)
    validate_text("description", description, field="description")
    with uow.write() as repo:
        if build_id:
            # The app and its build in one statement.
            found, holds_build = repo.lock_app_with_build(app_name, build_id)
            app = lookups.app_named(repo, app_name) if found is None else found
            if holds_build is None:
                raise NotFound(
                    f"build not found: {build_id}", reason=BUILD_NOT_FOUND, field="build_id"
                )
            if not holds_build:
                raise NotFound(
                    f"build {build_id} not found in app {app.name}",
                    reason=BUILD_NOT_FOUND,
                    field="build_id",
                )
        else:
            app = lookups.app_named(repo, app_name, lock=True)
        if not build_id and app.latest_release_id:
            raise InvalidArgument(
                "build id is required: only an app's first release may have no build",
                field="build_id",
            )
        return lookups.new_release(uow, repo, app, build_id, env, description, actor)


def get_release(uow: UnitOfWork, app_name: str, release_id: str) -> Release:
    validate_app_name(app_name)
    with uow.read() as repo:
        return lookups.release_of(repo, lookups.app_named(repo, app_name), release_id, field="id")


def list_releases(uow: UnitOfWork, app_name: str, limit: int, page_token: str) -> Listing[Release]:
    """Newest first, without env, with status; ``page_token`` continues a previous listing."""

    def fetch(repo: Repository, app: App, size: int, before: int | None) -> Page[Release]:
        page = repo.list_releases(app.name, size, before)
        return Page([lookups.with_status(r, app) for r in page.items], page.next_cursor)

    return lookups.listing(uow, "releases", app_name, limit, page_token, fetch)


def get_release_manifest(uow: UnitOfWork, app_name: str, release_id: str) -> str:
    validate_app_name(app_name)
    with uow.read() as repo:
        app = lookups.app_named(repo, app_name)
        release = lookups.release_of(repo, app, release_id, field="id")
        return lookups.build_of(repo, app, composition.require_build(release)).manifest


def create_release_from(
    uow: UnitOfWork,
    app_name: str,
    build_from: str,
    env_from: str,
    use_active_build: bool,
    use_active_env: bool,
    actor: str,
) -> Release:
    """A release combining the build of one release with the env of another (or the active
    release's), described ``created-from``."""
    validate_app_name(app_name)
    sources = composition.choose_sources(build_from, env_from, use_active_build, use_active_env)
    # A malformed id is bad input whatever the app's state (checked before the active release).
    check_id(RELEASE, sources.build_from, "build_from", required=False)
    check_id(RELEASE, sources.env_from, "env_from", required=False)
    with uow.write() as repo:
        app = lookups.app_named(repo, app_name, lock=True)
        if sources.build_from:
            build_source = lookups.release_of(repo, app, sources.build_from, field="build_from")
        else:
            build_source = composition.require_active(
                app.name, lookups.active_of(repo, app), "--use-active-release-build"
            )
        if sources.env_from:
            env_source = lookups.release_of(repo, app, sources.env_from, field="env_from")
        else:
            env_source = composition.require_active(
                app.name, lookups.active_of(repo, app), "--use-active-release-env"
            )
        build_id = composition.require_build(build_source)
        return lookups.new_release(
            uow, repo, app, build_id, env_source.env, composition.CREATED_FROM, actor
        )


def diff_releases(uow: UnitOfWork, app_name: str, from_id: str, to_id: str) -> ReleaseDiff:
    """What changes from ``from_id`` to ``to_id``. Defaults: from the active release, to the
    latest release."""
    validate_app_name(app_name)
    check_id(RELEASE, from_id, "from_id", required=False)
    check_id(RELEASE, to_id, "to_id", required=False)
    with uow.read() as repo:
        app = lookups.app_named(repo, app_name)
        if from_id:
            old = lookups.release_of(repo, app, from_id, field="from_id")
        else:
            active = lookups.active_of(repo, app)
            if active is None:
                raise FailedPrecondition(
                    f"app {app.name} has no active release to compare with: name a release",
                    reason=NO_ACTIVE_RELEASE,
                )
            old = active
        if to_id:
            new = lookups.release_of(repo, app, to_id, field="to_id")
        else:
            latest = lookups.latest_of(repo, app)
            if latest is None:
                raise FailedPrecondition(f"app {app.name} has no releases")
            new = latest
    return ReleaseDiff(
        from_id=old.id,
        to_id=new.id,
        from_build_id=old.build_id,
        to_build_id=new.build_id,
        env=diff_env(old.env, new.env),
    )
