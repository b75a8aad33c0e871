"""Use-cases: plain values in, domain objects out, one unit of work per call. No SQL, no gRPC."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from relman_common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from relman_common.ids import BUILD, RELEASE, new_id

from relman_release.domain import composition
from relman_release.domain.env import (
    NO_CHANGE,
    EnvDiff,
    apply_env_change,
    diff_env,
    validate_change,
)
from relman_release.domain.manifest import parse_manifest, validate_images
from relman_release.domain.model import BUILD_COMPLETE, App, Build, Deployable, Release
from relman_release.domain.names import (
    require_id,
    validate_app_name,
    validate_env,
    validate_text,
)
from relman_release.domain.paging import decode_token, encode_token, page_limit
from relman_release.ports import Repository, UnitOfWork

# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedBuild:
    build: Build
    release: Release
    warning: str = ""


@dataclass(frozen=True)
class EnvChanged:
    changed: bool
    release: Release | None
    description: str
    warning: str = ""


@dataclass(frozen=True)
class EnvView:
    env: Mapping[str, str]
    release_id: str


@dataclass(frozen=True)
class Listing:
    items: list[Release] | list[Build]
    next_page_token: str


@dataclass(frozen=True)
class ReleaseDiff:
    from_id: str
    to_id: str
    from_build_id: str
    to_build_id: str
    env: EnvDiff

    @property
    def build_changed(self) -> bool:
        return self.from_build_id != self.to_build_id


# --- lookups shared by the use-cases ---------------------------------------------------------


def _app(repo: Repository, name: str, lock: bool = False) -> App:
    app = repo.lock_app(name) if lock else repo.get_app(name)
    if app is None:
        raise NotFound(f"app not found: {name}")
    return app


def _release(repo: Repository, app: App, release_id: str) -> Release:
    """A release of ``app`` (its status filled in), or NotFound."""
    require_id("release", release_id)
    release = repo.find_release(release_id)
    if release is None:
        raise NotFound(f"release not found: {release_id}")
    if release.app != app.name:
        raise NotFound(f"release {release_id} not found in app {app.name}")
    return _with_status(release, app)


def _build(repo: Repository, app: App, build_id: str) -> Build:
    require_id("build", build_id)
    build = repo.find_build(build_id)
    if build is None:
        raise NotFound(f"build not found: {build_id}")
    if build.app != app.name:
        raise NotFound(f"build {build_id} not found in app {app.name}")
    return build


def _latest(repo: Repository, app: App) -> Release | None:
    return _release(repo, app, app.latest_release_id) if app.latest_release_id else None


def _active(repo: Repository, app: App, known: Release | None = None) -> Release | None:
    """The app's active release; ``known`` (a release already read in this transaction, e.g.
    the latest) is reused instead of being read again when it is the active one."""
    if not app.active_release_id:
        return None
    if known is not None and known.id == app.active_release_id:
        return known
    return _release(repo, app, app.active_release_id)


def _with_status(release: Release, app: App) -> Release:
    status = composition.release_status(
        release.id, app.active_release_id, release.last_deployment_outcome
    )
    return replace(release, status=status)


def _new_release(
    uow: UnitOfWork,
    repo: Repository,
    app: App,
    build_id: str,
    env: Mapping[str, str],
    description: str,
    actor: str,
) -> Release:
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
    return _with_status(release, replace(app, latest_release_id=release.id))


# --- apps ------------------------------------------------------------------------------------


def create_app(uow: UnitOfWork, name: str, actor: str) -> App:
    validate_app_name(name)
    with uow.write() as repo:
        if repo.get_app(name) is not None:
            raise AlreadyExists(f"app already exists: {name}")
        app = App(name=name, created=uow.now(), actor=actor)
        repo.add_app(app)
        return app


def get_app(uow: UnitOfWork, name: str) -> App:
    validate_app_name(name)
    with uow.read() as repo:
        return _app(repo, name)


def list_apps(uow: UnitOfWork) -> list[App]:
    with uow.read() as repo:
        return repo.list_apps()


def delete_app(uow: UnitOfWork, name: str) -> None:
    """Removes the app with all its builds and releases, in one transaction."""
    validate_app_name(name)
    with uow.write() as repo:
        _app(repo, name, lock=True)
        repo.delete_app(name)


# --- builds ----------------------------------------------------------------------------------


def import_build(
    uow: UnitOfWork,
    app_name: str,
    manifest: str,
    images: Mapping[str, str],
    description: str,
    git_sha: str,
    actor: str,
) -> ImportedBuild:
    """A complete build, and a release of it with the env of the app's latest release."""
    validate_app_name(app_name)
    parsed = parse_manifest(manifest)
    checked_images = validate_images(parsed, dict(images))
    validate_text("description", description)
    validate_text("git sha", git_sha, max_length=64)
    with uow.write() as repo:
        app = _app(repo, app_name, lock=True)
        latest = _latest(repo, app)
        active = _active(repo, app, latest)
        now = uow.now()
        build = Build(
            id=new_id(BUILD),
            app=app.name,
            manifest=manifest,
            images=checked_images,
            description=description,
            git_sha=git_sha,
            status=BUILD_COMPLETE,
            created=now,
            started=now,
            ended=now,
            actor=actor,
        )
        repo.add_build(build)
        env = latest.env if latest is not None else {}
        release = _new_release(uow, repo, app, build.id, env, description, actor)
        warning = composition.unpromoted_env_warning(latest, active)
        return ImportedBuild(build=build, release=release, warning=warning)


def get_build(uow: UnitOfWork, app_name: str, build_id: str) -> Build:
    validate_app_name(app_name)
    with uow.read() as repo:
        return _build(repo, _app(repo, app_name), build_id)


def list_builds(uow: UnitOfWork, app_name: str, limit: int, page_token: str) -> Listing:
    validate_app_name(app_name)
    size = page_limit(limit)
    before = decode_token("builds", app_name, page_token)
    with uow.read() as repo:
        _app(repo, app_name)
        page = repo.list_builds(app_name, size, before)
    token = "" if page.next_cursor is None else encode_token("builds", app_name, page.next_cursor)
    return Listing(items=page.items, next_page_token=token)


# --- environment -----------------------------------------------------------------------------


def get_env(uow: UnitOfWork, app_name: str, release_id: str = "") -> EnvView:
    """The env of ``release_id``, or of the app's latest release (empty when it has none)."""
    validate_app_name(app_name)
    with uow.read() as repo:
        app = _app(repo, app_name)
        release = _release(repo, app, release_id) if release_id else _latest(repo, app)
    if release is None:
        return EnvView(env={}, release_id="")
    return EnvView(env=release.env, release_id=release.id)


def change_env(
    uow: UnitOfWork,
    app_name: str,
    set_: Mapping[str, str],
    unset: Sequence[str],
    replace_all: bool,
    actor: str,
) -> EnvChanged:
    """Applies a change to the env of the app's *latest* release, making a new release of its
    build. Read, apply and insert happen in one write transaction with the app locked, so
    concurrent changes are applied one after the other and none is lost."""
    validate_app_name(app_name)
    validate_change(set_, unset, replace_all)  # reject bad input before taking any lock
    with uow.write() as repo:
        app = _app(repo, app_name, lock=True)
        latest = _latest(repo, app)
        change = apply_env_change(latest.env if latest else {}, set_, unset, replace_all)
        if not change.changed:
            return EnvChanged(changed=False, release=None, description=NO_CHANGE)
        warning = composition.unpromoted_build_warning(latest, _active(repo, app, latest))
        build_id = latest.build_id if latest is not None else ""
        release = _new_release(uow, repo, app, build_id, change.env, change.description, actor)
        return EnvChanged(
            changed=True, release=release, description=change.description, warning=warning
        )


# --- releases --------------------------------------------------------------------------------


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
    validate_env(dict(env))
    validate_text("description", description)
    with uow.write() as repo:
        if build_id:
            # The app and its build in one statement; the checks keep _build's order and words.
            found, holds_build = repo.lock_app_with_build(app_name, build_id)
            if found is None:
                raise NotFound(f"app not found: {app_name}")
            app = found
            require_id("build", build_id)
            if holds_build is None:
                raise NotFound(f"build not found: {build_id}")
            if not holds_build:
                raise NotFound(f"build {build_id} not found in app {app.name}")
        else:
            app = _app(repo, app_name, lock=True)
        if not build_id and app.latest_release_id:
            raise InvalidArgument(
                "build id is required: only an app's first release may have no build"
            )
        return _new_release(uow, repo, app, build_id, env, description, actor)


def get_release(uow: UnitOfWork, app_name: str, release_id: str) -> Release:
    validate_app_name(app_name)
    with uow.read() as repo:
        return _release(repo, _app(repo, app_name), release_id)


def list_releases(uow: UnitOfWork, app_name: str, limit: int, page_token: str) -> Listing:
    """Newest first, without env, with status; ``page_token`` continues a previous listing."""
    validate_app_name(app_name)
    size = page_limit(limit)
    before = decode_token("releases", app_name, page_token)
    with uow.read() as repo:
        app = _app(repo, app_name)
        page = repo.list_releases(app_name, size, before)
    items = [_with_status(r, app) for r in page.items]
    token = "" if page.next_cursor is None else encode_token("releases", app_name, page.next_cursor)
    return Listing(items=items, next_page_token=token)


def get_release_manifest(uow: UnitOfWork, app_name: str, release_id: str) -> str:
    validate_app_name(app_name)
    with uow.read() as repo:
        app = _app(repo, app_name)
        release = _release(repo, app, release_id)
        return _build(repo, app, composition.require_build(release)).manifest


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
    with uow.write() as repo:
        app = _app(repo, app_name, lock=True)
        if sources.build_from:
            build_source = _release(repo, app, sources.build_from)
        else:
            build_source = composition.require_active(
                app.name, _active(repo, app), "--use-active-release-build"
            )
        if sources.env_from:
            env_source = _release(repo, app, sources.env_from)
        else:
            env_source = composition.require_active(
                app.name, _active(repo, app), "--use-active-release-env"
            )
        build_id = composition.require_build(build_source)
        return _new_release(
            uow, repo, app, build_id, env_source.env, composition.CREATED_FROM, actor
        )


def diff_releases(uow: UnitOfWork, app_name: str, from_id: str, to_id: str) -> ReleaseDiff:
    """What changes from ``from_id`` to ``to_id``. Defaults: from the active release, to the
    latest release."""
    validate_app_name(app_name)
    with uow.read() as repo:
        app = _app(repo, app_name)
        if from_id:
            old = _release(repo, app, from_id)
        else:
            active = _active(repo, app)
            if active is None:
                raise FailedPrecondition(
                    f"app {app.name} has no active release to compare with: name a release"
                )
            old = active
        if to_id:
            new = _release(repo, app, to_id)
        else:
            latest = _latest(repo, app)
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


# --- calls made by the Deployer --------------------------------------------------------------


def get_deployable(uow: UnitOfWork, app_name: str, release_id: str = "") -> Deployable:
    """A release (the latest by default) with its build and the app's active release."""
    validate_app_name(app_name)
    with uow.read() as repo:
        app = _app(repo, app_name)
        if release_id:
            release = _release(repo, app, release_id)
        else:
            latest = _latest(repo, app)
            if latest is None:
                raise FailedPrecondition(f"app {app.name} has no releases")
            release = latest
        build = _build(repo, app, release.build_id) if release.build_id else None
        active = _active(repo, app, release)
        return Deployable(release=release, build=build, active_release=active)


def create_rollback_release(uow: UnitOfWork, app_name: str, release_id: str, actor: str) -> Release:
    """A copy of an old release (its build and env), described ``rollback to R...``."""
    validate_app_name(app_name)
    with uow.write() as repo:
        app = _app(repo, app_name, lock=True)
        old = _release(repo, app, release_id)
        description = composition.rollback_description(old.id)
        return _new_release(uow, repo, app, old.build_id, old.env, description, actor)


def mark_release_active(uow: UnitOfWork, app_name: str, release_id: str, deployment_id: str) -> App:
    """Makes ``release_id`` the app's active release. Doing it twice changes nothing."""
    validate_app_name(app_name)
    with uow.write() as repo:
        app = _app(repo, app_name, lock=True)
        _release(repo, app, release_id)
        if app.active_release_id != release_id:
            repo.set_active_release(app.name, release_id)
        return replace(app, active_release_id=release_id)


def record_deployment_outcome(
    uow: UnitOfWork, app_name: str, release_id: str, deployment_id: str, outcome: str
) -> Release:
    """Remembers the last deployment of a release and how it went, for the STATUS column."""
    validate_app_name(app_name)
    composition.validate_outcome(outcome)
    require_id("deployment", deployment_id)
    with uow.write() as repo:
        app = _app(repo, app_name, lock=True)
        release = _release(repo, app, release_id)
        repo.record_outcome(release.id, deployment_id, outcome)
        updated = replace(
            release, last_deployment_id=deployment_id, last_deployment_outcome=outcome
        )
        return _with_status(updated, app)
