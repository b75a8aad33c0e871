"""How releases are composed from other releases, and how their status is shown."""

from __future__ import annotations

from dataclasses import dataclass

from relman_common.errors import NO_ACTIVE_RELEASE, NO_BUILD, FailedPrecondition, InvalidArgument

from relman_release.domain.model import Release

CREATED_FROM = "created-from"

NEED_BUILD_SOURCE = "must specify either --build-from or --use-active-release-build"
NEED_ENV_SOURCE = "must specify either --env-from or --use-active-release-env"


@dataclass(frozen=True)
class Sources:
    """Where a create-from release takes its build and its env: a release id, or "" for the
    app's active release."""

    build_from: str
    env_from: str

    @property
    def needs_active(self) -> bool:
        return not self.build_from or not self.env_from


def choose_sources(
    build_from: str, env_from: str, use_active_build: bool, use_active_env: bool
) -> Sources:
    """Exactly one build source and exactly one env source.

    >>> choose_sources("RAAAAAAAAAA", "", False, True)
    Sources(build_from='RAAAAAAAAAA', env_from='')
    >>> try:
    ...     choose_sources("", "", False, True)
    ... except InvalidArgument as err:
    ...     print(err)
    must specify either --build-from or --use-active-release-build
    """
    if bool(build_from) == use_active_build:
        raise InvalidArgument(NEED_BUILD_SOURCE)
    if bool(env_from) == use_active_env:
        raise InvalidArgument(NEED_ENV_SOURCE)
    return Sources(build_from=build_from, env_from=env_from)


def require_active(app: str, active: Release | None, flag: str) -> Release:
    if active is None:
        raise FailedPrecondition(
            f"app {app} has no active release for {flag}: promote a release first, "
            "or name a release instead",
            reason=NO_ACTIVE_RELEASE,
        )
    return active


def require_build(release: Release) -> str:
    if not release.build_id:
        raise FailedPrecondition(f"no build for release: {release.id}", reason=NO_BUILD)
    return release.build_id


def rollback_description(release_id: str) -> str:
    """
    >>> rollback_description("RBCDEFGHIJK")
    'rollback to RBCDEFGHIJK'
    """
    return f"rollback to {release_id}"


def unpromoted_build_warning(latest: Release | None, active: Release | None) -> str:
    """A warning when a release made from the latest release would also ship a build that was
    never promoted (rack#793): the latest release's build is not the active release's build."""
    if latest is None or active is None or latest.build_id == active.build_id:
        return ""
    return (
        f"the latest release {latest.id} has build {latest.build_id or '(none)'}, which is not "
        f"the active build {active.build_id or '(none)'} (release {active.id}): the new release "
        f"would also ship unpromoted build {latest.build_id or '(none)'}"
    )


def unpromoted_env_warning(latest: Release | None, active: Release | None) -> str:
    """A warning when a new build's release takes env changes that were never promoted: the
    latest release's env is not the active release's env."""
    if latest is None or active is None or dict(latest.env) == dict(active.env):
        return ""
    return (
        f"the env of the latest release {latest.id} differs from the env of the active release "
        f"{active.id}: the new release would also ship those unpromoted env changes"
    )
