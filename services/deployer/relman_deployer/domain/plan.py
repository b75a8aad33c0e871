"""What promoting a release would change, as plain values: the plan of a dry run.

A plan compares the release to promote with the app's active release (from the Release
service's Deployable): build and image per service, every setting of a service that shapes
its pods or its rollout, env adds/changes/removes, and the release command a promote runs
first. The backend adds the objects it would write, as they are and as they would be
(:class:`ObjectPlan`). Nothing here talks to anything; values are in the clear (the CLI
masks env values).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from relman_common.manifest import ReleaseCommand, Service

from relman_deployer.domain.model import Deployable

Json = dict[str, Any]


class Change(Enum):
    UNCHANGED = "unchanged"
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


def change_of(before: object | None, after: object | None) -> Change:
    """How ``after`` differs from ``before`` (None: absent).

    >>> change_of(None, 1), change_of(1, None), change_of(1, 2), change_of(1, 1)
    (<Change.ADDED: 'added'>, <Change.REMOVED: 'removed'>, <Change.CHANGED: 'changed'>, \
<Change.UNCHANGED: 'unchanged'>)
    """
    if before is None:
        return Change.UNCHANGED if after is None else Change.ADDED
    if after is None:
        return Change.REMOVED
    return Change.UNCHANGED if before == after else Change.CHANGED


@dataclass(frozen=True)
class SettingChange:
    name: str
    old_value: str
    new_value: str


@dataclass(frozen=True)
class ServicePlan:
    name: str
    change: Change
    old_image: str = ""
    new_image: str = ""
    # The settings that differ (all of an added or removed service).
    settings: tuple[SettingChange, ...] = ()


@dataclass(frozen=True)
class EnvPlan:
    key: str
    change: Change
    old_value: str = ""
    new_value: str = ""


@dataclass(frozen=True)
class ObjectPlan:
    """One object the backend would write: as it is (``before``) and as it would be
    (``after``), server-managed fields left out; None where it does not / would not exist."""

    kind: str
    name: str
    change: Change
    before: Json | None = None
    after: Json | None = None


@dataclass(frozen=True)
class PromotionPlan:
    app: str
    release_id: str
    active_release_id: str
    build_id: str
    active_build_id: str
    services: tuple[ServicePlan, ...]
    env: tuple[EnvPlan, ...]
    # The release command the promote would run first; None when none would.
    release_command: ReleaseCommand | None = None
    backend: str = ""
    objects: tuple[ObjectPlan, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether promoting would change anything (as ``git diff --exit-code`` counts it)."""
        return (
            self.release_id != self.active_release_id
            or any(s.change is not Change.UNCHANGED for s in self.services)
            or bool(self.env)
            or any(o.change is not Change.UNCHANGED for o in self.objects)
        )


def service_settings(service: Service) -> dict[str, str]:
    """Every setting of ``service`` that shapes its pods or its rollout, as text, in a fixed
    order (the image is compared on its own).

    >>> from relman_common.manifest import Port, Scale
    >>> s = service_settings(Service("web", "i", command=("bin/web", "-p 1"), port=Port(5000),
    ...                              scale=Scale(1, 4, cpu=250)))
    >>> s["command"], s["port"], s["scale.count"], s["scale.cpu"], s["deployment.minimum"]
    ("bin/web '-p 1'", 'http:5000', '1-4', '250', '50%')
    """
    scale = service.scale
    count = str(scale.count) if scale.max == scale.count else f"{scale.count}-{scale.max}"
    return {
        "command": shlex.join(service.command) if service.command else "",
        "port": f"{service.port.scheme}:{service.port.number}" if service.port else "",
        "ports": ",".join(str(p) for p in service.ports),
        "health": _health(service),
        "scale.count": count,
        "scale.cpu": str(scale.cpu) if scale.cpu else "",
        "scale.memory": str(scale.memory) if scale.memory else "",
        "deployment.minimum": f"{service.minimum}%",
        "deployment.maximum": f"{service.maximum}%",
        "termination.grace": f"{service.termination_grace}s",
        "internal": "true" if service.internal else "false",
        "environment": " ".join(
            f"{e.key}={e.default}" if e.default is not None else e.key for e in service.environment
        ),
    }


def _health(service: Service) -> str:
    if service.port is None:
        return ""
    h = service.health
    return f"{h.path} grace={h.grace}s interval={h.interval}s timeout={h.timeout}s"


def plan_service(old: Service | None, new: Service | None) -> ServicePlan:
    """How one service changes (``old`` None: added; ``new`` None: removed)."""
    if old is None and new is None:
        raise ValueError("a service plan needs a service")
    name = (new or old).name  # type: ignore[union-attr]
    before = service_settings(old) if old is not None else {}
    after = service_settings(new) if new is not None else {}
    settings = tuple(
        SettingChange(key, before.get(key, ""), after.get(key, ""))
        for key in dict.fromkeys([*after, *before])
        if before.get(key, "") != after.get(key, "")
    )
    old_image = old.image if old is not None else ""
    new_image = new.image if new is not None else ""
    if old is None:
        change = Change.ADDED
    elif new is None:
        change = Change.REMOVED
    elif settings or old_image != new_image:
        change = Change.CHANGED
    else:
        change = Change.UNCHANGED
    return ServicePlan(name, change, old_image, new_image, settings)


def plan_services(old: Iterable[Service], new: Iterable[Service]) -> tuple[ServicePlan, ...]:
    """Each service of ``new`` in its order, then those of ``old`` that ``new`` drops."""
    before = {s.name: s for s in old}
    after = {s.name: s for s in new}
    plans = [plan_service(before.get(name), service) for name, service in after.items()]
    plans += [plan_service(service, None) for name, service in before.items() if name not in after]
    return tuple(plans)


def plan_env(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[EnvPlan, ...]:
    """Adds, then changes, then removes, each sorted by key (as release descriptions list
    them); unchanged keys are left out.

    >>> [(e.key, e.change.value) for e in plan_env({"A": "1", "B": "2"}, {"B": "3", "C": "4"})]
    [('C', 'added'), ('B', 'changed'), ('A', 'removed')]
    """
    added = [EnvPlan(k, Change.ADDED, "", new[k]) for k in sorted(new) if k not in old]
    changed = [
        EnvPlan(k, Change.CHANGED, old[k], new[k])
        for k in sorted(new)
        if k in old and old[k] != new[k]
    ]
    removed = [EnvPlan(k, Change.REMOVED, old[k], "") for k in sorted(old) if k not in new]
    return (*added, *changed, *removed)


def plan_objects(
    before: Iterable[tuple[str, str, Json]], after: Iterable[tuple[str, str, Json]]
) -> tuple[ObjectPlan, ...]:
    """Objects as ``(kind, name, object)`` now and as they would be, paired by kind and name:
    those that would exist in their order, then those that would be gone."""
    old = {(kind, name): obj for kind, name, obj in before}
    new = {(kind, name): obj for kind, name, obj in after}
    plans = [
        ObjectPlan(kind, name, change_of(old.get((kind, name)), obj), old.get((kind, name)), obj)
        for (kind, name), obj in new.items()
    ]
    plans += [
        ObjectPlan(kind, name, Change.REMOVED, obj, None)
        for (kind, name), obj in old.items()
        if (kind, name) not in new
    ]
    return tuple(plans)


def plan_promotion(
    deployable: Deployable,
    *,
    backend: str = "",
    objects: tuple[ObjectPlan, ...] = (),
    warnings: tuple[str, ...] = (),
) -> PromotionPlan:
    """The plan of promoting ``deployable.release`` over the app's active release."""
    release, active = deployable.release, deployable.active
    return PromotionPlan(
        app=release.app,
        release_id=release.id,
        active_release_id=active.id if active is not None else "",
        build_id=release.build_id,
        active_build_id=active.build_id if active is not None else "",
        services=plan_services(deployable.active_services, deployable.services),
        env=plan_env(active.env if active is not None else {}, release.env),
        # A promote runs the release's command before any rollout step (rollbacks never do).
        release_command=deployable.release_command,
        backend=backend,
        objects=objects,
        warnings=warnings,
    )
