"""The environment: read it, change it (each change is a new release)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from relman_common.vocabulary import validate_app_name

from relman_release.app import lookups
from relman_release.app.results import EnvChanged, EnvView
from relman_release.domain import composition
from relman_release.domain.env import NO_CHANGE, apply_env_change, validate_change
from relman_release.ports import UnitOfWork


def get_env(uow: UnitOfWork, app_name: str, release_id: str = "") -> EnvView:
    """The env of ``release_id``, or of the app's latest release (empty when it has none)."""
    validate_app_name(app_name)
    with uow.read() as repo:
        app = lookups.app_named(repo, app_name)
        release = (
            lookups.release_of(repo, app, release_id)
            if release_id
            else lookups.latest_of(repo, app)
        )
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
        app = lookups.app_named(repo, app_name, lock=True)
        latest = lookups.latest_of(repo, app)
        change = apply_env_change(latest.env if latest else {}, set_, unset, replace_all)
        if not change.changed:
            return EnvChanged(changed=False, release=None, description=NO_CHANGE)
        warning = composition.unpromoted_build_warning(latest, lookups.active_of(repo, app, latest))
        build_id = latest.build_id if latest is not None else ""
        release = lookups.new_release(
            uow, repo, app, build_id, change.env, change.description, actor
        )
        return EnvChanged(
            changed=True, release=release, description=change.description, warning=warning
        )
