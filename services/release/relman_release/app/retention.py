"""Retention: prune an app's old releases and the builds only they used; pin and unpin.

The rows go in one transaction per app; the files they leave (source archives, images) are
listed in that transaction's garbage rows and deleted after the commit by the sweeper
(:mod:`relman_release.builds.sweeper`), so a crash in between leaves garbage to sweep, never
a missing file of something kept.
"""

from __future__ import annotations

from dataclasses import replace

from relman_common.vocabulary import validate_app_name

from relman_release.app import lookups
from relman_release.domain.model import App, Release
from relman_release.domain.retention import PrunePlan, check_keep, plan_prune
from relman_release.ports import Repository, UnitOfWork


def _plan(repo: Repository, app: App, keep: int) -> PrunePlan:
    return plan_prune(app, repo.all_releases(app.name), repo.build_facts(app.name), keep)


def prune_in(uow: UnitOfWork, repo: Repository, app: App, keep: int, actor: str) -> PrunePlan:
    """Prunes ``app`` (locked by this transaction) to ``keep`` releases, inside it."""
    count = repo.count_releases(app.name)
    if count <= keep:
        return PrunePlan(releases=(), builds=(), kept=count)
    plan = _plan(repo, app, keep)
    if not plan.empty:
        repo.prune(app.name, plan.releases, plan.builds, plan.garbage, uow.now(), actor)
    return plan


def prune_releases(
    uow: UnitOfWork, app_name: str, keep: int, dry_run: bool, actor: str
) -> PrunePlan:
    """What ``relman releases prune`` removes (``dry_run``: would remove)."""
    validate_app_name(app_name)
    check_keep(keep)
    if dry_run:
        with uow.read() as repo:
            return _plan(repo, lookups.app_named(repo, app_name), keep)
    with uow.write() as repo:
        return prune_in(uow, repo, lookups.app_named(repo, app_name, lock=True), keep, actor)


def set_pinned(uow: UnitOfWork, app_name: str, release_id: str, pinned: bool) -> Release:
    validate_app_name(app_name)
    with uow.write() as repo:
        app = lookups.app_named(repo, app_name, lock=True)
        release = lookups.release_of(repo, app, release_id, field="id")
        if release.pinned != pinned:
            repo.set_pinned(release.id, pinned)
        return replace(release, pinned=pinned)


def pin_release(uow: UnitOfWork, app_name: str, release_id: str) -> Release:
    return set_pinned(uow, app_name, release_id, True)


def unpin_release(uow: UnitOfWork, app_name: str, release_id: str) -> Release:
    return set_pinned(uow, app_name, release_id, False)
