"""Builds: import one made elsewhere (it also makes a release), read, list."""

from __future__ import annotations

from collections.abc import Mapping

from relman_common.lifecycle import BuildStatus
from relman_common.manifest import parse_manifest
from relman_common.vocabulary import (
    BUILD,
    MAX_GIT_SHA,
    RELEASE,
    new_id,
    validate_app_name,
    validate_text,
)

from relman_release.app import events, lookups
from relman_release.app.results import ImportedBuild, Listing
from relman_release.domain import composition
from relman_release.domain.builds import validate_images
from relman_release.domain.model import Build
from relman_release.ports import UnitOfWork


def import_build(
    uow: UnitOfWork,
    app_name: str,
    manifest: str,
    images: Mapping[str, str],
    description: str,
    git_sha: str,
    actor: str,
    build_id: str = "",
) -> ImportedBuild:
    """A complete build, and a release of it with the env of the app's latest release.
    ``build_id`` is the new build's id when it had to be chosen before (its images are
    tagged with it)."""
    validate_app_name(app_name)
    checked_images = validate_images(parse_manifest(manifest), images)
    validate_text("description", description, field="description")
    validate_text("git sha", git_sha, max_length=MAX_GIT_SHA, field="git_sha")
    with uow.write() as repo:
        app = lookups.app_named(repo, app_name, lock=True)
        latest = lookups.latest_of(repo, app)
        active = lookups.active_of(repo, app, latest)
        now = uow.now()
        release_id = new_id(RELEASE)  # the build names the release made of it
        build = Build(
            id=build_id or new_id(BUILD),
            app=app.name,
            manifest=manifest,
            images=checked_images,
            description=description,
            git_sha=git_sha,
            status=BuildStatus.COMPLETE,
            created=now,
            started=now,
            ended=now,
            actor=actor,
            release_id=release_id,
        )
        repo.add_build(build)
        env = latest.env if latest is not None else {}
        events.build_ended(uow, repo, app, build, release_id)  # before the release it makes
        release = lookups.new_release(uow, repo, app, build.id, env, description, actor, release_id)
        warning = composition.unpromoted_env_warning(latest, active)
        return ImportedBuild(build=build, release=release, warning=warning)


def get_build(uow: UnitOfWork, app_name: str, build_id: str) -> Build:
    validate_app_name(app_name)
    with uow.read() as repo:
        return lookups.build_of(repo, lookups.app_named(repo, app_name), build_id, field="id")


def list_builds(uow: UnitOfWork, app_name: str, limit: int, page_token: str) -> Listing[Build]:
    return lookups.listing(
        uow,
        "builds",
        app_name,
        limit,
        page_token,
        lambda repo, app, size, before: repo.list_builds(app.name, size, before),
    )
