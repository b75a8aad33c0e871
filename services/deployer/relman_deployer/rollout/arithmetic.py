"""Rolling-update arithmetic of the Kubernetes Deployment controller, as pure functions.

Follows ``pkg/controller/deployment/rolling.go`` and ``util/deployment_util.go``: every function
takes counts and returns counts or the scale operations to perform; nothing here does I/O, so a
backend (the ``sim`` cluster) or a test drives it and records what it decides.

The worked example of the Kubernetes documentation, 10 replicas with maxSurge 25% and
maxUnavailable 25%, where new pods only become available when nothing else can move:

>>> strategy = RollingStrategy(max_surge_percent=25, max_unavailable_percent=25)
>>> resolve_fenceposts(25, 25, 10)
(3, 2)
>>> new, old = ReplicaSetCounts("web-new", 0, 0), [ReplicaSetCounts("web-old", 10, 10)]
>>> [str(s) for s in rolling_step(10, strategy, new, old)]
['Scaled up replica set web-new to 3']
>>> new = ReplicaSetCounts("web-new", 3, 0)
>>> [str(s) for s in rolling_step(10, strategy, new, old)]
['Scaled down replica set web-old to 8']
>>> old = [ReplicaSetCounts("web-old", 8, 8)]
>>> [str(s) for s in rolling_step(10, strategy, new, old)]
['Scaled up replica set web-new to 5']
>>> new = ReplicaSetCounts("web-new", 5, 0)
>>> rolling_step(10, strategy, new, old)  # 5 new pods still starting: wait
[]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from relman_common.errors import InvalidArgument


@dataclass(frozen=True)
class RollingStrategy:
    """``RollingUpdate`` parameters as percentages of the desired replicas (as convox.yml has)."""

    max_surge_percent: int = 25
    max_unavailable_percent: int = 25

    def validate(self) -> None:
        """Reject what the Kubernetes API server's validation rejects (except 0/0, see below).

        Both percentages at 0 are allowed here: :func:`resolve_fenceposts` turns them into
        maxUnavailable 1, as the controller does when rounding makes both zero.
        """
        if self.max_surge_percent < 0:
            raise InvalidArgument(f"maxSurge must not be negative: {self.max_surge_percent}%")
        if self.max_unavailable_percent < 0:
            raise InvalidArgument(
                f"maxUnavailable must not be negative: {self.max_unavailable_percent}%"
            )
        if self.max_unavailable_percent > 100:
            raise InvalidArgument(
                f"maxUnavailable must not exceed 100%: {self.max_unavailable_percent}%"
            )


@dataclass(frozen=True)
class ReplicaSetCounts:
    """What the controller reads of a ReplicaSet: ``spec.replicas`` and available pods."""

    name: str
    replicas: int
    available: int = 0


@dataclass(frozen=True)
class Scale:
    """One ``scaleReplicaSetAndRecordEvent`` call: set ``name`` from ``before`` to ``replicas``."""

    name: str
    before: int
    replicas: int

    @property
    def direction(self) -> str:
        return "up" if self.replicas > self.before else "down"

    def __str__(self) -> str:
        """The ScalingReplicaSet event message Kubernetes records for this scale."""
        return f"Scaled {self.direction} replica set {self.name} to {self.replicas}"


def scaled_value_from_percent(percent: int, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent`` for a percentage.

    >>> scaled_value_from_percent(25, 10, round_up=True), scaled_value_from_percent(25, 10, False)
    (3, 2)
    """
    # Integer arithmetic: no float rounding surprises (k8s uses math.Ceil/Floor on float64).
    if round_up:
        return -((-percent * total) // 100)
    return (percent * total) // 100


def resolve_fenceposts(
    max_surge_percent: int, max_unavailable_percent: int, desired: int
) -> tuple[int, int]:
    """``ResolveFenceposts``: (maxSurge, maxUnavailable) as pod counts.

    Surge rounds up, unavailable rounds down; if both come out 0 the controller allows one
    unavailable pod (surge might be blocked by quota), so a rollout can always move.

    >>> resolve_fenceposts(25, 25, 10)
    (3, 2)
    >>> resolve_fenceposts(0, 0, 3)
    (0, 1)
    >>> resolve_fenceposts(0, 25, 3)  # 0.75 rounds down to 0, so 1
    (0, 1)
    >>> resolve_fenceposts(100, 50, 1)  # convox.yml defaults (minimum 50, maximum 200)
    (1, 0)
    """
    surge = scaled_value_from_percent(max_surge_percent, desired, round_up=True)
    unavailable = scaled_value_from_percent(max_unavailable_percent, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(desired: int, strategy: RollingStrategy) -> int:
    """``MaxUnavailable``: resolved, and never more than the desired replicas.

    >>> max_unavailable(0, RollingStrategy(25, 25)), max_unavailable(1, RollingStrategy(0, 0))
    (0, 1)
    """
    if desired == 0:
        return 0
    _, unavailable = resolve_fenceposts(
        strategy.max_surge_percent, strategy.max_unavailable_percent, desired
    )
    return min(unavailable, desired)


def max_surge(desired: int, strategy: RollingStrategy) -> int:
    """``MaxSurge``: resolved maxSurge as a pod count.

    >>> max_surge(10, RollingStrategy(25, 25))
    3
    """
    surge, _ = resolve_fenceposts(
        strategy.max_surge_percent, strategy.max_unavailable_percent, desired
    )
    return surge


def new_rs_new_replicas(desired: int, surge: int, all_replicas: int, new_replicas: int) -> int:
    """``NewRSNewReplicas`` (RollingUpdate): how far the new ReplicaSet may be scaled up now.

    ``all_replicas`` is the sum of ``spec.replicas`` over every ReplicaSet, new included. The
    new ReplicaSet grows until all pods reach ``desired + surge``, never past ``desired``.

    >>> new_rs_new_replicas(desired=10, surge=3, all_replicas=10, new_replicas=0)
    3
    >>> new_rs_new_replicas(desired=10, surge=3, all_replicas=13, new_replicas=3)  # at the cap
    3
    >>> new_rs_new_replicas(desired=2, surge=2, all_replicas=0, new_replicas=0)  # first deploy
    2
    """
    max_total_pods = desired + surge
    if all_replicas >= max_total_pods:
        return new_replicas
    scale_up_count = min(max_total_pods - all_replicas, desired - new_replicas)
    return new_replicas + scale_up_count


def reconcile_new_replica_set(
    desired: int,
    strategy: RollingStrategy,
    new: ReplicaSetCounts,
    old: Sequence[ReplicaSetCounts],
) -> Scale | None:
    """``reconcileNewReplicaSet``: the scale of the new ReplicaSet to make, if any."""
    if new.replicas == desired:
        return None
    if new.replicas > desired:
        return Scale(new.name, new.replicas, desired)
    all_replicas = new.replicas + sum(rs.replicas for rs in old)
    target = new_rs_new_replicas(desired, max_surge(desired, strategy), all_replicas, new.replicas)
    if target == new.replicas:
        return None
    return Scale(new.name, new.replicas, target)


def cleanup_unhealthy_replicas(
    old: Sequence[ReplicaSetCounts], max_cleanup_count: int
) -> tuple[list[ReplicaSetCounts], list[Scale]]:
    """``cleanupUnhealthyReplicas``: scale old ReplicaSets down by their unavailable pods first.

    Unhealthy old pods would otherwise block the rollout. ``old`` is oldest first. Returns the
    ReplicaSets after the scales, and the scales.

    >>> rs, scales = cleanup_unhealthy_replicas([ReplicaSetCounts("web-a", 3, 1)], 5)
    >>> [str(s) for s in scales]
    ['Scaled down replica set web-a to 1']
    """
    updated = list(old)
    scales: list[Scale] = []
    total_scaled_down = 0
    for i, rs in enumerate(updated):
        if total_scaled_down >= max_cleanup_count:
            break
        if rs.replicas == 0 or rs.replicas == rs.available:
            continue
        scaled_down = min(max_cleanup_count - total_scaled_down, rs.replicas - rs.available)
        target = rs.replicas - scaled_down
        scales.append(Scale(rs.name, rs.replicas, target))
        # Only unavailable pods go, so the available count is unchanged.
        updated[i] = replace(rs, replicas=target, available=min(rs.available, target))
        total_scaled_down += scaled_down
    return updated, scales


def scale_down_old_replica_sets_for_rolling_update(
    desired: int,
    strategy: RollingStrategy,
    new: ReplicaSetCounts,
    old: Sequence[ReplicaSetCounts],
) -> list[Scale]:
    """``scaleDownOldReplicaSetsForRollingUpdate``: keep ``desired - maxUnavailable`` available.

    ``totalScaleDownCount = availablePodCount - minAvailable``, taken from the oldest first.

    >>> s = RollingStrategy(25, 25)
    >>> [str(x) for x in scale_down_old_replica_sets_for_rolling_update(
    ...     10, s, ReplicaSetCounts("n", 3, 0), [ReplicaSetCounts("o", 10, 10)])]
    ['Scaled down replica set o to 8']
    """
    min_available = desired - max_unavailable(desired, strategy)
    available_pod_count = new.available + sum(rs.available for rs in old)
    if available_pod_count <= min_available:
        return []
    total_scale_down_count = available_pod_count - min_available
    total_scaled_down = 0
    scales: list[Scale] = []
    for rs in old:
        if total_scaled_down >= total_scale_down_count:
            break
        if rs.replicas == 0:
            continue
        scale_down_count = min(rs.replicas, total_scale_down_count - total_scaled_down)
        scales.append(Scale(rs.name, rs.replicas, rs.replicas - scale_down_count))
        total_scaled_down += scale_down_count
    return scales


def reconcile_old_replica_sets(
    desired: int,
    strategy: RollingStrategy,
    new: ReplicaSetCounts,
    old: Sequence[ReplicaSetCounts],
) -> list[Scale]:
    """``reconcileOldReplicaSets``: the scale-downs of old ReplicaSets to make now (oldest first).

    ``maxScaledDown = allPodsCount - minAvailable - newRSUnavailablePodCount``: pods of the new
    ReplicaSet that are not yet available count against the budget, so a new ReplicaSet that
    cannot become available never lets the old one shrink below ``minAvailable``.

    >>> s, new = RollingStrategy(25, 25), ReplicaSetCounts("n", 5, 0)
    >>> reconcile_old_replica_sets(10, s, new, [ReplicaSetCounts("o", 8, 8)])  # 5 new starting
    []
    """
    old_pods_count = sum(rs.replicas for rs in old)
    if old_pods_count == 0:
        return []
    all_pods_count = old_pods_count + new.replicas
    min_available = desired - max_unavailable(desired, strategy)
    new_rs_unavailable = new.replicas - new.available
    max_scaled_down = all_pods_count - min_available - new_rs_unavailable
    if max_scaled_down <= 0:
        return []
    cleaned, cleanup_scales = cleanup_unhealthy_replicas(old, max_scaled_down)
    scale_downs = scale_down_old_replica_sets_for_rolling_update(desired, strategy, new, cleaned)
    return cleanup_scales + scale_downs


def rolling_step(
    desired: int,
    strategy: RollingStrategy,
    new: ReplicaSetCounts,
    old: Sequence[ReplicaSetCounts],
) -> list[Scale]:
    """One pass of ``rolloutRolling``: scale the new ReplicaSet up if allowed, else old ones down.

    ``old`` holds the other ReplicaSets of the Deployment, oldest first (ReplicaSets at 0
    replicas may be included). An empty result means nothing can move until pods change.
    Applying the scales in order is what the controller does.
    """
    scale_up = reconcile_new_replica_set(desired, strategy, new, old)
    if scale_up is not None:
        return [scale_up]
    return reconcile_old_replica_sets(desired, strategy, new, [rs for rs in old if rs.replicas])


def deployment_complete(desired: int, updated: int, total: int, available: int) -> bool:
    """``DeploymentComplete``: every pod is of the new template, and all of them are available.

    >>> deployment_complete(3, updated=3, total=4, available=3)  # an old pod still running
    False
    >>> deployment_complete(3, updated=3, total=3, available=3)
    True
    """
    return updated == desired and total == desired and available == desired
