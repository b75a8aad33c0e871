"""Property tests: the invariants the Deployment controller's rolling update promises.

A model cluster: ReplicaSets are (replicas, available); scaling down removes unavailable pods
first; between controller passes, hypothesis decides which new pods become available (in a
healthy rollout at least one eventually does; in a failing one none ever does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from relman_deployer.rollout import (
    ReplicaSetCounts,
    RollingStrategy,
    Scale,
    max_surge,
    max_unavailable,
    rolling_step,
)

PERCENTS = st.integers(min_value=0, max_value=100)
SURGE_PERCENTS = st.integers(min_value=0, max_value=200)


@dataclass
class Model:
    desired: int
    strategy: RollingStrategy
    new: ReplicaSetCounts
    old: list[ReplicaSetCounts]
    scales: list[Scale] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.new.replicas + sum(rs.replicas for rs in self.old)

    @property
    def available(self) -> int:
        return self.new.available + sum(rs.available for rs in self.old)

    def apply(self, scale: Scale) -> None:
        assert scale.before != scale.replicas, "a scale that changes nothing is never made"
        assert scale.replicas >= 0
        self.scales.append(scale)

        def scaled(rs: ReplicaSetCounts) -> ReplicaSetCounts:
            assert rs.replicas == scale.before
            return ReplicaSetCounts(rs.name, scale.replicas, min(rs.available, scale.replicas))

        if scale.name == self.new.name:
            self.new = scaled(self.new)
        else:
            self.old = [scaled(rs) if rs.name == scale.name else rs for rs in self.old]

    def step(self) -> bool:
        """One controller pass; False when nothing can move."""
        scales = rolling_step(self.desired, self.strategy, self.new, self.old)
        for scale in scales:
            self.apply(scale)
        return bool(scales)


@st.composite
def rollouts(draw: st.DrawFn) -> Model:
    """A healthy, finished earlier rollout (one or more old ReplicaSets, all pods available)
    and a new template to roll out."""
    desired = draw(st.integers(min_value=0, max_value=40))
    strategy = RollingStrategy(draw(SURGE_PERCENTS), draw(PERCENTS))
    parts = draw(st.lists(st.integers(min_value=0, max_value=desired), min_size=1, max_size=3))
    # Old ReplicaSets whose replicas add up to `desired` (the last one takes the remainder).
    old: list[ReplicaSetCounts] = []
    left = desired
    for i, part in enumerate(parts):
        n = left if i == len(parts) - 1 else min(part, left)
        old.append(ReplicaSetCounts(f"web-old{i}", n, n))
        left -= n
    return Model(desired, strategy, ReplicaSetCounts("web-new", 0, 0), old)


def check_bounds(m: Model) -> None:
    assert m.total <= m.desired + max_surge(m.desired, m.strategy), "more pods than surge allows"
    min_available = m.desired - max_unavailable(m.desired, m.strategy)
    assert m.available >= min_available, "fewer pods available than maxUnavailable allows"
    assert m.new.replicas <= m.desired


@settings(max_examples=300, deadline=None)
@given(model=rollouts(), readiness=st.data())
def test_healthy_rollout_stays_within_surge_and_unavailable_and_ends_all_new(
    model: Model, readiness: st.DataObject
) -> None:
    for _ in range(1000):
        while model.step():
            check_bounds(model)
        unready = model.new.replicas - model.new.available
        if unready == 0:
            break
        ready = readiness.draw(st.integers(min_value=1, max_value=unready), label="ready")
        model.new = ReplicaSetCounts(
            model.new.name, model.new.replicas, model.new.available + ready
        )
        check_bounds(model)
    else:
        raise AssertionError("the rollout did not terminate")
    assert model.new == ReplicaSetCounts("web-new", model.desired, model.desired)
    assert all(rs.replicas == 0 for rs in model.old)
    assert model.total == model.available == model.desired


@settings(max_examples=300, deadline=None)
@given(model=rollouts())
def test_failing_new_pods_never_take_availability_below_the_minimum(model: Model) -> None:
    """New pods never become available (crash loop): the rollout stalls, availability holds."""
    for _ in range(1000):
        if not model.step():
            break
        check_bounds(model)
    else:
        raise AssertionError("the controller kept scaling without any pod becoming available")
    min_available = model.desired - max_unavailable(model.desired, model.strategy)
    assert model.available >= min_available
    if model.desired > 0:
        # The fenceposts always let the rollout start, and the stall keeps old pods serving.
        assert model.new.replicas >= 1
        assert sum(rs.available for rs in model.old) >= min_available


@settings(max_examples=200, deadline=None)
@given(
    desired=st.integers(min_value=1, max_value=30),
    surge=SURGE_PERCENTS,
    unavailable=PERCENTS,
    data=st.data(),
)
def test_rollback_over_unhealthy_pods_completes_and_removes_them_first(
    desired: int, surge: int, unavailable: int, data: st.DataObject
) -> None:
    """Rolling back to a healthy template while the newer one's pods never got available."""
    strategy = RollingStrategy(surge, unavailable)
    good_replicas = data.draw(st.integers(min_value=0, max_value=desired), label="good")
    bad_replicas = data.draw(st.integers(min_value=1, max_value=desired), label="bad")
    model = Model(
        desired,
        strategy,
        ReplicaSetCounts("web-good", good_replicas, good_replicas),
        [ReplicaSetCounts("web-bad", bad_replicas, 0)],
    )
    for _ in range(1000):
        while model.step():
            pass
        unready = model.new.replicas - model.new.available
        if unready == 0:
            break
        model.new = ReplicaSetCounts(model.new.name, model.new.replicas, model.new.replicas)
    assert model.new == ReplicaSetCounts("web-good", desired, desired)
    assert model.old == [ReplicaSetCounts("web-bad", 0, 0)]
    assert all(s.direction == "down" for s in model.scales if s.name == "web-bad")


@given(
    desired=st.integers(min_value=0, max_value=1000),
    surge=SURGE_PERCENTS,
    unavailable=PERCENTS,
)
def test_fenceposts_always_let_a_rollout_move(desired: int, surge: int, unavailable: int) -> None:
    strategy = RollingStrategy(surge, unavailable)
    s, u = max_surge(desired, strategy), max_unavailable(desired, strategy)
    assert s >= 0 and 0 <= u <= desired
    assert desired == 0 or s + u > 0
