"""Table tests of the rolling-update arithmetic against the Kubernetes Deployment controller."""

from __future__ import annotations

import doctest

import pytest
from relman_common.errors import InvalidArgument
from relman_deployer.backends.sim import names as sim_names
from relman_deployer.rollout import (
    ReplicaSetCounts,
    RollingStrategy,
    Scale,
    arithmetic,
    cleanup_unhealthy_replicas,
    deployment_complete,
    max_unavailable,
    new_rs_new_replicas,
    progress,
    reconcile_old_replica_sets,
    resolve_fenceposts,
    rolling_step,
)


@pytest.mark.parametrize("module", [arithmetic, progress, sim_names])
def test_worked_examples_in_doc_comments_hold(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize(
    ("surge_pct", "unavailable_pct", "desired", "expected"),
    [
        (25, 25, 10, (3, 2)),  # surge rounds up (2.5 -> 3), unavailable down (2.5 -> 2)
        (25, 25, 4, (1, 1)),
        (25, 25, 1, (1, 0)),  # 0.25 -> surge 1, unavailable 0
        (0, 25, 1, (0, 1)),  # both resolve to 0 -> unavailable 1
        (0, 0, 5, (0, 1)),  # both 0 explicitly -> unavailable 1
        (0, 0, 0, (0, 1)),
        (100, 50, 2, (2, 1)),  # convox.yml defaults: minimum 50, maximum 200
        (0, 100, 3, (0, 3)),  # minimum 0: everything may go at once
        (50, 0, 3, (2, 0)),  # maximum 150, minimum 100: surge only
        (10, 10, 3, (1, 0)),  # 0.3 -> 1 / 0: the both-zero rule needs *both* at zero
        (1, 1, 250, (3, 2)),
    ],
)
def test_fenceposts_round_surge_up_unavailable_down_and_never_both_zero(
    surge_pct: int, unavailable_pct: int, desired: int, expected: tuple[int, int]
) -> None:
    assert resolve_fenceposts(surge_pct, unavailable_pct, desired) == expected


@pytest.mark.parametrize(
    ("desired", "strategy", "expected"),
    [
        (0, RollingStrategy(25, 25), 0),  # nothing desired: nothing may be unavailable
        (2, RollingStrategy(0, 100), 2),
        (1, RollingStrategy(0, 0), 1),  # the both-zero 1 is capped at desired
        (10, RollingStrategy(25, 25), 2),
    ],
)
def test_max_unavailable_is_resolved_and_capped_at_desired(
    desired: int, strategy: RollingStrategy, expected: int
) -> None:
    assert max_unavailable(desired, strategy) == expected


@pytest.mark.parametrize(
    ("desired", "surge", "all_replicas", "new_replicas", "expected"),
    [
        (10, 3, 10, 0, 3),  # start of a rollout: up to desired + surge
        (10, 3, 13, 3, 3),  # at the cap: wait
        (10, 3, 11, 3, 5),  # old scaled down by 2: new may take the room
        (10, 3, 15, 3, 3),  # above the cap (e.g. after a scale-down of desired): wait
        (3, 0, 2, 0, 1),  # maxSurge 0: only the room made by old pods going
        (2, 2, 0, 0, 2),  # first deployment: straight to desired
        (5, 5, 6, 4, 5),  # never past desired
    ],
)
def test_new_replica_set_grows_to_desired_plus_surge_never_past_desired(
    desired: int, surge: int, all_replicas: int, new_replicas: int, expected: int
) -> None:
    assert new_rs_new_replicas(desired, surge, all_replicas, new_replicas) == expected


def test_new_replica_set_above_desired_is_scaled_straight_down() -> None:
    strategy = RollingStrategy(25, 25)
    scales = rolling_step(2, strategy, ReplicaSetCounts("web-new", 5, 5), [])
    assert scales == [Scale("web-new", 5, 2)]


def _run_to_standstill(
    desired: int,
    strategy: RollingStrategy,
    new: ReplicaSetCounts,
    old: list[ReplicaSetCounts],
) -> tuple[ReplicaSetCounts, list[ReplicaSetCounts], list[str]]:
    """Apply rolling steps (without any pod becoming ready) until nothing moves."""
    log: list[str] = []
    while scales := rolling_step(desired, strategy, new, old):
        for scale in scales:
            log.append(str(scale))
            if scale.name == new.name:
                new = ReplicaSetCounts(new.name, scale.replicas, min(new.available, scale.replicas))
            else:
                old = [
                    ReplicaSetCounts(rs.name, scale.replicas, min(rs.available, scale.replicas))
                    if rs.name == scale.name
                    else rs
                    for rs in old
                ]
    return new, old, log


def test_worked_example_ten_replicas_25_25_matches_the_kubernetes_sequence() -> None:
    strategy = RollingStrategy(max_surge_percent=25, max_unavailable_percent=25)
    new, old = ReplicaSetCounts("web-new", 0, 0), [ReplicaSetCounts("web-old", 10, 10)]
    sequence: list[str] = []
    for _ in range(10):
        new, old, log = _run_to_standstill(10, strategy, new, old)
        sequence += log
        if not log and new.available == new.replicas:
            break
        new = ReplicaSetCounts(new.name, new.replicas, new.replicas)  # the new pods get ready
    assert sequence == [
        "Scaled up replica set web-new to 3",
        "Scaled down replica set web-old to 8",
        "Scaled up replica set web-new to 5",
        "Scaled down replica set web-old to 3",
        "Scaled up replica set web-new to 10",
        "Scaled down replica set web-old to 0",
    ]
    assert new == ReplicaSetCounts("web-new", 10, 10)
    assert old == [ReplicaSetCounts("web-old", 0, 0)]


def test_old_replica_set_is_not_scaled_down_while_new_pods_are_unavailable() -> None:
    strategy = RollingStrategy(25, 25)
    # 13 pods, 8 must stay available, 5 new pods not available yet: nothing may go.
    scales = reconcile_old_replica_sets(
        10, strategy, ReplicaSetCounts("n", 5, 0), [ReplicaSetCounts("o", 8, 8)]
    )
    assert scales == []


def test_unhealthy_old_pods_are_removed_first_oldest_replica_set_first() -> None:
    updated, scales = cleanup_unhealthy_replicas(
        [
            ReplicaSetCounts("web-a", 3, 3),  # healthy: untouched
            ReplicaSetCounts("web-b", 4, 1),  # 3 unhealthy
            ReplicaSetCounts("web-c", 2, 0),  # 2 unhealthy, but the budget runs out
        ],
        max_cleanup_count=4,
    )
    assert scales == [Scale("web-b", 4, 1), Scale("web-c", 2, 1)]
    assert updated == [
        ReplicaSetCounts("web-a", 3, 3),
        ReplicaSetCounts("web-b", 1, 1),
        ReplicaSetCounts("web-c", 1, 0),
    ]


def test_rollback_over_a_crashing_replica_set_removes_the_crashing_pods() -> None:
    # desired 2, convox defaults (surge 2, unavailable 1); the crashing RS ("web-bad") holds
    # 2 pods that never became available; the rollback target ("web-good") is back at 2.
    strategy = RollingStrategy(max_surge_percent=100, max_unavailable_percent=50)
    new = ReplicaSetCounts("web-good", 2, 1)
    old = [ReplicaSetCounts("web-bad", 2, 0)]
    assert rolling_step(2, strategy, new, old) == [Scale("web-bad", 2, 0)]


def test_unavailable_new_pods_block_cleanup_of_old_ones_as_in_the_rolling_go_example() -> None:
    """The "concrete example" in rolling.go: 10 replicas, maxUnavailable 2, maxSurge 3."""
    strategy = RollingStrategy(25, 25)
    crashing = ReplicaSetCounts("web-crash", 5, 0)  # new pods crash-loop, never available
    good = ReplicaSetCounts("web-good", 8, 7)  # a node failed under one old pod
    # Case 1: 13 - 8 - 5 = 0, so the old ReplicaSet is not touched, not even its bad pod.
    assert rolling_step(10, strategy, crashing, [good]) == []
    # ... then `rollout undo`: 13 - 8 - 1 = 4 of the crash-looping pods go ...
    assert rolling_step(10, strategy, good, [crashing]) == [Scale("web-crash", 5, 1)]
    # ... and with 9 pods left the good ReplicaSet grows back to 10.
    after = [ReplicaSetCounts("web-crash", 1, 0)]
    assert rolling_step(10, strategy, good, after) == [Scale("web-good", 8, 10)]
    # Case 2, a roll-over to a third template: its ReplicaSet starts at 0 (13 pods already),
    # so nothing of it is unavailable and both old ReplicaSets shed 5 unhealthy pods.
    third = ReplicaSetCounts("web-third", 0, 0)
    assert rolling_step(10, strategy, third, [good, crashing]) == [
        Scale("web-good", 8, 7),
        Scale("web-crash", 5, 1),
    ]


def test_scale_down_counts_available_pods_of_every_replica_set() -> None:
    strategy = RollingStrategy(25, 25)
    scales = reconcile_old_replica_sets(
        10,
        strategy,
        ReplicaSetCounts("n", 5, 5),
        [ReplicaSetCounts("o1", 3, 3), ReplicaSetCounts("o2", 5, 5)],
    )
    # 13 available, 8 must stay: 5 go, taken from the oldest ReplicaSet first.
    assert scales == [Scale("o1", 3, 0), Scale("o2", 5, 3)]


@pytest.mark.parametrize(
    "strategy",
    [RollingStrategy(-1, 25), RollingStrategy(25, -1), RollingStrategy(25, 101)],
)
def test_strategies_kubernetes_would_reject_are_invalid(strategy: RollingStrategy) -> None:
    with pytest.raises(InvalidArgument):
        strategy.validate()


def test_scale_message_is_the_kubernetes_event_wording() -> None:
    assert str(Scale("web-745f845dc", 0, 1)) == "Scaled up replica set web-745f845dc to 1"
    assert str(Scale("web-745f845dc", 1, 0)) == "Scaled down replica set web-745f845dc to 0"


@pytest.mark.parametrize(
    ("updated", "total", "available", "complete"),
    [(3, 3, 3, True), (3, 4, 3, False), (3, 3, 2, False), (2, 3, 3, False)],
)
def test_deployment_complete_needs_updated_total_and_available_equal_desired(
    updated: int, total: int, available: int, complete: bool
) -> None:
    assert deployment_complete(3, updated, total, available) is complete
