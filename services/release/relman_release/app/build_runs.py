"""Builds from source: create one from an uploaded archive, and the runner's steps (start,
complete with a release, fail, heartbeats, interruptions, log lines). Every step is one
transaction; the runner's steps change only builds that runner owns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta

from relman_common.errors import BUILD_NOT_FOUND, InvalidArgument, NotFound
from relman_common.lifecycle import BuildStatus
from relman_common.manifest import parse_manifest
from relman_common.vocabulary import (
    BUILD,
    MAX_GIT_SHA,
    MAX_MANIFEST_BYTES,
    RELEASE,
    new_id,
    quote,
    validate_app_name,
    validate_text,
)

from relman_release.app import events
from relman_release.app.lookups import app_named, latest_of, new_release
from relman_release.builds.archive import normal_path
from relman_release.builds.contents import read_contents
from relman_release.builds.sources import SourceStore, check_sha256, not_held
from relman_release.domain.build_plan import build_plan, check_build_sources
from relman_release.domain.builds import validate_images
from relman_release.domain.model import Build, LogLine
from relman_release.ports import Repository, UnitOfWork

DEFAULT_MANIFEST = "convox.yml"
INTERRUPTED = "interrupted"


class _Lost(Exception):
    """The build is no longer this runner's to finish: the transaction is rolled back."""


def read_manifest(sources: SourceStore, sha256: str, manifest_path: str) -> str:
    """The manifest text of a held source, checked: it parses, and every build path and
    Dockerfile it names is in the source."""
    with sources.open(sha256) as raw:
        contents = read_contents(raw, manifest_path, MAX_MANIFEST_BYTES)
    if contents.wanted is None:
        raise InvalidArgument(
            f"the source has no manifest {quote(manifest_path)} (a file at its root, or the "
            "path given with --manifest)",
            field="manifest_path",
        )
    try:
        text = contents.wanted.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(
            f"the manifest {quote(manifest_path)} is not UTF-8 text", field="manifest_path"
        ) from None
    check_build_sources(build_plan(parse_manifest(text)), contents.files, contents.dirs)
    return text


def create_build(
    uow: UnitOfWork,
    sources: SourceStore,
    runner: str,
    app_name: str,
    sha256: str,
    manifest_path: str,
    description: str,
    git_sha: str,
    no_cache: bool,
    actor: str,
) -> Build:
    """A build of the uploaded source ``sha256`` (status CREATED), for ``runner`` to run.
    Nothing is created when the app, the source, the manifest or a Dockerfile is missing or
    the manifest is invalid."""
    validate_app_name(app_name)
    check_sha256(sha256, field="source_sha256")
    path = normal_path(manifest_path or DEFAULT_MANIFEST)
    if not path:
        raise InvalidArgument(
            f"invalid manifest path {quote(manifest_path)}: a file inside the source",
            field="manifest_path",
        )
    validate_text("description", description, field="description")
    validate_text("git sha", git_sha, max_length=MAX_GIT_SHA, field="git_sha")
    with uow.read() as repo:
        app_named(repo, app_name)
    if sources.stat(sha256) is None:
        raise not_held(sha256, field="source_sha256")
    manifest = read_manifest(sources, sha256, path)
    with uow.write() as repo:
        app = app_named(repo, app_name, lock=True)
        build = Build(
            id=new_id(BUILD),
            app=app.name,
            manifest=manifest,
            images={},
            description=description,
            git_sha=git_sha,
            status=BuildStatus.CREATED,
            created=uow.now(),
            started=None,
            ended=None,
            actor=actor,
            source_sha256=sha256,
            manifest_path=path,
            no_cache=no_cache,
        )
        repo.add_build(build, runner=runner)
    return build


def start_build(uow: UnitOfWork, build_id: str, runner: str) -> Build | None:
    """The build, now RUNNING; None when it is not ``runner``'s CREATED build any more."""
    with uow.write() as repo:
        if not repo.start_build(build_id, runner, uow.now()):
            return None
        return repo.find_build(build_id)


def complete_build(
    uow: UnitOfWork, build_id: str, runner: str, images: Mapping[str, str]
) -> Build | None:
    """COMPLETE with ``images``, and a release of it made as ImportBuild makes one (the build
    with the env of the app's latest release), in one transaction. None, and nothing
    changed, when the build is gone or no longer ``runner``'s to finish."""
    try:
        with uow.write() as repo:
            build = repo.find_build(build_id)
            if build is None:
                return None
            checked = validate_images(parse_manifest(build.manifest), images)
            app = app_named(repo, build.app, lock=True)
            latest = latest_of(repo, app)
            env = latest.env if latest is not None else {}
            release_id = new_id(RELEASE)
            events.build_ended(uow, repo, app, build, release_id)  # before the release it makes
            release = new_release(
                uow, repo, app, build.id, env, build.description, build.actor, release_id
            )
            now = uow.now()
            if not repo.finish_build(
                build_id, runner, BuildStatus.COMPLETE, now, checked, release_id=release.id
            ):
                raise _Lost
    except _Lost:
        return None
    return replace(
        build, status=BuildStatus.COMPLETE, ended=now, images=checked, release_id=release.id
    )


def fail_build(uow: UnitOfWork, build_id: str, runner: str, reason: str) -> bool:
    """FAILED with ``reason``; False when it was not ``runner``'s running build."""
    with uow.write() as repo:
        if not repo.finish_build(build_id, runner, BuildStatus.FAILED, uow.now(), {}, reason):
            return False
        _report_failed(uow, repo, [build_id], reason)
        return True


def _report_failed(
    uow: UnitOfWork, repo: Repository, build_ids: Sequence[str], reason: str
) -> None:
    """build.failed for each of ``build_ids`` (to the webhooks that want it)."""
    for build_id in build_ids:
        build = repo.find_build(build_id)
        app = repo.get_app(build.app) if build is not None else None
        if build is not None and app is not None:
            events.build_ended(uow, repo, app, build, reason=reason)


def renew_builds(uow: UnitOfWork, runner: str, build_ids: Sequence[str]) -> int:
    """The heartbeat of ``runner``'s unfinished builds among ``build_ids``."""
    if not build_ids:
        return 0
    with uow.write() as repo:
        return repo.renew_builds(runner, build_ids, uow.now())


def interrupt_own_builds(uow: UnitOfWork, runner: str) -> list[str]:
    """Fails every unfinished build of ``runner`` as interrupted (it is stopping)."""
    with uow.write() as repo:
        ended = repo.interrupt_builds(uow.now(), INTERRUPTED, runner=runner)
        _report_failed(uow, repo, ended, INTERRUPTED)
        return ended


def interrupt_stale_builds(uow: UnitOfWork, ttl: float) -> list[str]:
    """Fails as interrupted every unfinished build whose runner has not said it is alive for
    ``ttl`` seconds (it died); another live runner's builds are left alone."""
    with uow.write() as repo:
        now = uow.now()
        ended = repo.interrupt_builds(now, INTERRUPTED, stale_before=now - timedelta(seconds=ttl))
        _report_failed(uow, repo, ended, INTERRUPTED)
        return ended


def append_log(uow: UnitOfWork, build_id: str, lines: Sequence[LogLine]) -> None:
    with uow.write() as repo:
        repo.append_build_log(build_id, lines)


def read_log(
    uow: UnitOfWork, build_id: str, after_seq: int, limit: int
) -> tuple[Build, list[LogLine]]:
    """The build as it is, then its log lines after ``after_seq`` (at most ``limit``), read in
    that order: when the build has ended, every line it wrote is among them or before."""
    with uow.read() as repo:
        build = repo.find_build(build_id)
        lines = repo.build_log(build_id, after_seq, limit)
    if build is None:
        raise NotFound(f"build not found: {build_id}", reason=BUILD_NOT_FOUND, field="id")
    return build, lines
