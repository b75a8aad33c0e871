"""Domain objects to protos. Nothing else lives here."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from relman.v1 import auth_pb2, release_pb2  # type: ignore[import-not-found]

from relman_release.domain.env import EnvDiff
from relman_release.domain.model import App, Build, Deployable, Release
from relman_release.domain.tokens import ApiToken
from relman_release.services import EnvChanged, ImportedBuild, ReleaseDiff

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    """``Timestamp.FromDatetime`` in exact integer arithmetic, a third of its cost (a listing
    converts one per row). Naive datetimes are taken as UTC, as FromDatetime does.

    >>> ts = timestamp(datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC))
    >>> (ts.seconds, ts.nanos)
    (-1, 500000000)
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH  # days may be negative; seconds and microseconds never are
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def app_pb(app: App) -> release_pb2.App:
    return release_pb2.App(
        name=app.name,
        created=timestamp(app.created),
        active_release_id=app.active_release_id,
        latest_release_id=app.latest_release_id,
        actor=app.actor,
    )


def build_pb(build: Build) -> release_pb2.Build:
    pb = release_pb2.Build(
        id=build.id,
        app=build.app,
        manifest=build.manifest,
        images=dict(build.images),
        description=build.description,
        git_sha=build.git_sha,
        status=build.status,
        created=timestamp(build.created),
        actor=build.actor,
    )
    if build.started is not None:
        pb.started.CopyFrom(timestamp(build.started))
    if build.ended is not None:
        pb.ended.CopyFrom(timestamp(build.ended))
    return pb


def release_pb(release: Release) -> release_pb2.Release:
    return release_pb2.Release(
        id=release.id,
        app=release.app,
        build_id=release.build_id,
        env=dict(release.env),
        description=release.description,
        created=timestamp(release.created),
        status=release.status,
        actor=release.actor,
        last_deployment_id=release.last_deployment_id,
        last_deployment_outcome=release.last_deployment_outcome,
    )


def imported_build_pb(result: ImportedBuild) -> release_pb2.ImportBuildResponse:
    return release_pb2.ImportBuildResponse(
        build=build_pb(result.build), release=release_pb(result.release), warning=result.warning
    )


def env_changed_pb(result: EnvChanged) -> release_pb2.ChangeEnvResponse:
    pb = release_pb2.ChangeEnvResponse(
        changed=result.changed, description=result.description, warning=result.warning
    )
    if result.release is not None:
        pb.release.CopyFrom(release_pb(result.release))
    return pb


def _env_changes(diff: EnvDiff) -> dict[str, list[release_pb2.EnvChange]]:
    return {
        "added": [release_pb2.EnvChange(key=k, new_value=v) for k, v in diff.added],
        "changed": [
            release_pb2.EnvChange(key=k, old_value=old, new_value=new)
            for k, old, new in diff.changed
        ],
        "removed": [release_pb2.EnvChange(key=k, old_value=v) for k, v in diff.removed],
    }


def release_diff_pb(diff: ReleaseDiff) -> release_pb2.ReleaseDiff:
    return release_pb2.ReleaseDiff(
        from_id=diff.from_id,
        to_id=diff.to_id,
        from_build_id=diff.from_build_id,
        to_build_id=diff.to_build_id,
        build_changed=diff.build_changed,
        **_env_changes(diff.env),
    )


def deployable_pb(deployable: Deployable) -> release_pb2.Deployable:
    pb = release_pb2.Deployable(release=release_pb(deployable.release))
    if deployable.build is not None:
        pb.build.CopyFrom(build_pb(deployable.build))
    if deployable.active_release is not None:
        pb.active_release.CopyFrom(release_pb(deployable.active_release))
    return pb


def token_pb(token: ApiToken) -> auth_pb2.Token:
    pb = auth_pb2.Token(
        name=token.name, kind=token.kind, created=timestamp(token.created), actor=token.actor
    )
    if token.revoked is not None:
        pb.revoked.CopyFrom(timestamp(token.revoked))
    return pb
