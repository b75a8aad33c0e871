"""How many ScalingReplicaSet steps the real Deployment controller takes to roll 10 replicas.

The measurement tests/unit/deployer/sim/test_sim_step_counts.py holds the sim to; each run's count
is recorded as the ``scaling_steps`` property of the test (``--junitxml`` keeps it) and
printed (``-s``). The count depends on how many pods the controller finds ready at each
sync, so on timing: it is asserted only to lie between the rollout where every pod that
can is ready at once and the one where pods get ready one at a time.

This file sorts after the other cluster tests on purpose: 20 pods per rollout leave the
controller-manager's rate-limited API client busy for a while, and tests that read a
controller's events right after a rollout completes would see them late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from relman_common.manifest import Scale, Service
from relman_deployer.backends.base import (
    AppSpec,
    BackendEvent,
    Observation,
    RolloutStatus,
)
from relman_deployer.backends.kubernetes import KubernetesBackend

pytestmark = pytest.mark.xdist_group("kube")

DEADLINE = 90.0  # seconds; generous, only to turn a hang into a failure


def ten_replicas(app: str, release: str, minimum: int, maximum: int) -> AppSpec:
    web = Service(
        "web",
        f"registry.host/convox/{app}:web.B{release[1:]}",
        scale=Scale(10, 10),
        minimum=minimum,
        maximum=maximum,
    )
    return AppSpec(app, release, "B" + release[1:], {}, (web,))


def scalings(seen: list[Observation]) -> list[str]:
    return [
        o.message for o in seen if isinstance(o, BackendEvent) and o.reason == "ScalingReplicaSet"
    ]


def count(seen: list[Observation], reason: str) -> int:
    return sum(1 for o in seen if isinstance(o, BackendEvent) and o.reason == reason)


@pytest.mark.parametrize(
    ("minimum", "maximum", "bounds"),
    [
        # Fewest steps (the documented 3, 8, 5, 3, 10, 0) .. one pod at a time (16).
        (75, 125, range(6, 17)),
        (50, 150, range(4, 9)),
    ],
)
async def test_real_controller_step_counts(
    backend: KubernetesBackend,
    app_name: str,
    minimum: int,
    maximum: int,
    bounds: range,
    record_property: Callable[[str, object], None],
) -> None:
    observer = backend.observe(app_name)
    seen: list[Observation] = []

    async def until(done: Callable[[list[Observation]], bool]) -> None:
        async def run() -> None:
            if done(seen):
                return
            async for item in observer:
                seen.append(item)
                if done(seen):
                    return
            raise AssertionError("the observer ended")

        await asyncio.wait_for(run(), DEADLINE)

    def complete(release: str) -> Callable[[list[Observation]], bool]:
        def done(items: list[Observation]) -> bool:
            last = items[-1] if items else None
            return isinstance(last, RolloutStatus) and last.release_id == release and last.complete

        return done

    try:
        await backend.apply(ten_replicas(app_name, "RBCDEFGHIJK", minimum, maximum))
        await until(complete("RBCDEFGHIJK"))
        start = len(seen)
        await backend.apply(ten_replicas(app_name, "RCDEFGHIJKL", minimum, maximum))
        await until(complete("RCDEFGHIJKL"))
        # The last scale-down's event may come after the complete snapshot (the 10th such
        # event of a Deployment is "(combined from similar events): Scaled down ...").
        await until(
            lambda s: any("Scaled down" in m and m.endswith(" to 0") for m in scalings(s[start:]))
        )
        steps = scalings(seen[start:])
        # The ReplicaSet controller's last events too, so the cluster is quiet afterwards.
        await until(
            lambda s: count(s, "SuccessfulCreate") >= 20 and count(s, "SuccessfulDelete") >= 10
        )
    finally:
        await observer.aclose()
    record_property("scaling_steps", len(steps))
    print(f"maxSurge {maximum - 100}% maxUnavailable {100 - minimum}%: {len(steps)} steps")
    assert len(steps) in bounds, steps
