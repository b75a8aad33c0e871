"""Which releases and builds a prune removes (SPEC 9): pure rules, no storage.

Kept: the ``keep`` newest releases, and always the active release, the one active before it
(the rollback target), the latest, pinned releases and releases whose deployment is running.
A finished build goes when no kept release uses it and a pruned release did, or when it is
older than every kept release (a failed build, say); a build still running never goes.

>>> from datetime import UTC, datetime, timedelta
>>> t = [datetime(2019, 1, 1, tzinfo=UTC) + timedelta(minutes=m) for m in range(9)]
>>> app = App("web", t[0], "alice", active_release_id="R3", previous_active_release_id="R1",
...           latest_release_id="R6")
>>> def r(n, build, **kw): return Release(f"R{n}", "web", build, {}, "", t[n], "alice", **kw)
>>> releases = [r(6, "B3"), r(5, "B3"), r(4, "B2", pinned=True), r(3, "B2"), r(2, "B1"),
...             r(1, "B1"), r(0, "B0")]
>>> builds = [BuildFacts("B0", BuildStatus.COMPLETE, t[0], "aa", {}),
...           BuildFacts("B1", BuildStatus.COMPLETE, t[0], "bb", {}),
...           BuildFacts("B2", BuildStatus.COMPLETE, t[0], "", {}),
...           BuildFacts("B9", BuildStatus.RUNNING, t[0], "cc", {})]
>>> plan = plan_prune(app, releases, builds, keep=2)
>>> plan.releases, plan.builds, plan.kept
(('R2', 'R0'), ('B0',), 5)
>>> plan.garbage
(('source', 'aa'),)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from relman_common.errors import InvalidArgument
from relman_common.lifecycle import BuildStatus, Outcome

from relman_release.domain.model import App, Release

SOURCE = "source"
IMAGE = "image"
# Digest references name images relman stored (tags may be moved by anyone).
_PINNED_IMAGE = "@sha256:"
MAX_KEEP = 1_000_000


@dataclass(frozen=True)
class BuildFacts:
    """What retention needs to know of a build."""

    id: str
    status: BuildStatus
    created: datetime
    source_sha256: str
    images: Mapping[str, str]


@dataclass(frozen=True)
class PrunePlan:
    # Newest first.
    releases: tuple[str, ...]
    builds: tuple[str, ...]
    # Releases left.
    kept: int
    # (kind, ref) of the files the pruned builds leave behind: source archives, images.
    garbage: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.releases and not self.builds


def check_keep(keep: int) -> int:
    if keep < 1 or keep > MAX_KEEP:
        raise InvalidArgument(
            f"invalid keep {keep}: keep at least 1 release (and at most {MAX_KEEP})", field="keep"
        )
    return keep


def protected(app: App, release: Release) -> bool:
    """Whether ``release`` stays whatever ``keep`` says."""
    return (
        release.pinned
        or release.last_deployment_outcome is Outcome.RUNNING
        or release.id
        in (app.active_release_id, app.previous_active_release_id, app.latest_release_id)
    )


def plan_prune(
    app: App, releases: Sequence[Release], builds: Sequence[BuildFacts], keep: int
) -> PrunePlan:
    """``releases`` newest first (all of the app's), ``builds`` all of the app's."""
    check_keep(keep)
    kept = [r for i, r in enumerate(releases) if i < keep or protected(app, r)]
    kept_ids = {r.id for r in kept}
    pruned = [r for r in releases if r.id not in kept_ids]
    used = {r.build_id for r in kept}
    let_go = {r.build_id for r in pruned}
    oldest_kept = min((r.created for r in kept), default=None)
    gone = [
        b
        for b in builds
        if b.status in (BuildStatus.COMPLETE, BuildStatus.FAILED)
        and b.id not in used
        and (b.id in let_go or (oldest_kept is not None and b.created < oldest_kept))
    ]
    garbage: list[tuple[str, str]] = []
    for build in gone:
        if build.source_sha256:
            garbage.append((SOURCE, build.source_sha256))
        garbage += [
            (IMAGE, ref) for ref in sorted(set(build.images.values())) if _PINNED_IMAGE in ref
        ]
    return PrunePlan(
        releases=tuple(r.id for r in pruned),
        builds=tuple(b.id for b in gone),
        kept=len(kept),
        garbage=tuple(dict.fromkeys(garbage)),
    )
