"""The ``sim`` backend driven through the Backend interface: apply, observe, close."""

from __future__ import annotations

import asyncio
import gc
import re
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from relman_common.errors import InvalidArgument, Unavailable
from relman_common.manifest import Health, Scale, Service
from relman_deployer.backends import get_backend
from relman_deployer.backends.base import (
    AppSpec,
    BackendEvent,
    Observation,
    RolloutStatus,
)
from relman_deployer.backends.sim import SimBackend
from relman_deployer.rollout import max_surge, max_unavailable
from relman_deployer.rollout.arithmetic import RollingStrategy

DEADLINE = 20.0  # seconds; generous, only to turn a hang into a failure
# Release ids (R and 10 capital letters).
R0, R1, R2, R3, R9 = (f"R{letter * 10}" for letter in "ABCDJ")
IMAGE = "registry.host/myapp:web.BABCDEFGHI"

A = "[bcdfghjklmnpqrstvwxz2456789]"
RS = rf"web-{A}{{1,10}}"
POD = rf"{RS}-{A}{{5}}"
# reason -> (source, message) patterns, Kubernetes' wording.
WORDING: dict[str, tuple[str, str]] = {
    "ScalingReplicaSet": (r"web", rf"Scaled (up|down) replica set {RS} to \d+"),
    "SuccessfulCreate": (RS, rf"Created pod: {POD}"),
    "SuccessfulDelete": (RS, rf"Deleted pod: {POD}"),
    "Scheduled": (
        POD,
        rf"Successfully assigned relman-myapp/{POD} to instance-[0-9a-f]{{12}}",
    ),
    "Pulling": (POD, rf'Pulling image "{re.escape(IMAGE)}"'),
    "Pulled": (POD, rf'Successfully pulled image "{re.escape(IMAGE)}"'),
    "Created": (POD, "Created container main"),
    "Started": (POD, "Started container main"),
    "Killing": (POD, "Stopping container main"),
    "BackOff": (POD, "Back-off restarting failed container"),
    "Unhealthy": (POD, "Readiness probe failed: HTTP probe failed with statuscode: 503"),
}


def spec(
    release: str,
    replicas: int = 2,
    minimum: int = 50,
    maximum: int = 200,
    env: dict[str, str] | None = None,
    app: str = "myapp",
    services: tuple[str, ...] = ("web",),
) -> AppSpec:
    return AppSpec(
        app=app,
        release_id=release,
        build_id="BABCDEFGHI",
        env=env or {},
        services=tuple(
            Service(
                name=name,
                image=IMAGE,
                scale=Scale(replicas, replicas),
                minimum=minimum,
                maximum=maximum,
            )
            for name in services
        ),
    )


async def collect_until(
    observer: AsyncIterator[Observation],
    done: Callable[[list[Observation]], bool],
    within: float = DEADLINE,
) -> list[Observation]:
    """Everything ``observer`` yields until ``done(seen)`` holds (or fail at the deadline)."""
    seen: list[Observation] = []

    async def run() -> list[Observation]:
        async for item in observer:
            seen.append(item)
            if done(seen):
                return seen
        raise AssertionError(f"observer ended early after {len(seen)} items")

    return await asyncio.wait_for(run(), within)


def completed(release: str) -> Callable[[list[Observation]], bool]:
    def done(seen: list[Observation]) -> bool:
        last = seen[-1]
        return isinstance(last, RolloutStatus) and last.release_id == release and last.complete

    return done


def events(seen: list[Observation], reason: str | None = None) -> list[BackendEvent]:
    return [o for o in seen if isinstance(o, BackendEvent) and reason in (None, o.reason)]


def statuses(seen: list[Observation], release: str) -> list[RolloutStatus]:
    return [o for o in seen if isinstance(o, RolloutStatus) and o.release_id == release]


@pytest.fixture
async def sim() -> AsyncIterator[SimBackend]:
    backend = SimBackend(pod_delay=0, retry_interval=0.01, seed=7)
    yield backend
    await backend.close()


async def test_first_deploy_scales_straight_to_desired_and_completes(sim: SimBackend) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R1, replicas=3))
    seen = await collect_until(observer, completed(R1))
    assert isinstance(seen[0], RolloutStatus)  # a snapshot first
    scales = [e.message for e in events(seen, "ScalingReplicaSet")]
    assert len(scales) == 1 and scales[0].endswith(" to 3")
    assert len(events(seen, "SuccessfulCreate")) == 3
    assert len(events(seen, "Started")) == 3
    final = statuses(seen, R1)[-1].services[0]
    assert (final.desired, final.updated, final.total, final.available) == (3, 3, 3, 3)


@pytest.mark.parametrize(
    ("replicas", "minimum", "maximum"),
    [
        (2, 50, 200),  # convox defaults: surge 100%, unavailable 50%
        (10, 75, 125),  # Kubernetes defaults: 25% / 25%
        (4, 100, 150),  # maxUnavailable 0: surge only
        (4, 0, 100),  # maxSurge 0, maxUnavailable 100%
        (3, 100, 100),  # maxSurge 0 and maxUnavailable 0: resolved to unavailable 1
        (1, 100, 100),
        (0, 50, 200),  # scaled to zero
    ],
)
async def test_rollout_completes_within_surge_and_unavailable_bounds(
    sim: SimBackend, replicas: int, minimum: int, maximum: int
) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R1, replicas, minimum, maximum))
    await collect_until(observer, completed(R1))
    await sim.apply(spec(R2, replicas, minimum, maximum))
    seen = await collect_until(observer, completed(R2))

    strategy = RollingStrategy(maximum - 100, 100 - minimum)
    for status in statuses(seen, R2):
        web = status.services[0]
        assert web.total <= replicas + max_surge(replicas, strategy)
        assert web.available >= replicas - max_unavailable(replicas, strategy)
    sets = sim.replica_sets("myapp", "web")
    assert len(sets) == 2
    old, new = sets.values()
    assert (old, new) == (0, replicas)
    assert len(events(seen, "SuccessfulDelete")) == replicas
    assert len(events(seen, "Killing")) == replicas


async def test_worked_example_first_scales_match_kubernetes(sim: SimBackend) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R1, replicas=10, minimum=75, maximum=125))
    await collect_until(observer, completed(R1))
    await sim.apply(spec(R2, replicas=10, minimum=75, maximum=125))
    # apply() runs the controller before any new pod can get ready: the first three passes.
    seen = await collect_until(observer, lambda s: len(events(s, "ScalingReplicaSet")) == 3)
    old, new = sim.replica_sets("myapp", "web")
    assert [e.message for e in events(seen, "ScalingReplicaSet")] == [
        f"Scaled up replica set {new} to 3",
        f"Scaled down replica set {old} to 8",
        f"Scaled up replica set {new} to 5",
    ]


async def test_every_event_has_kubernetes_wording_and_source(sim: SimBackend) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R1))
    seen = await collect_until(observer, completed(R1))
    await sim.apply(spec(R2, env={"RELMAN_SIM_FAIL": "crash"}))
    seen += await collect_until(observer, lambda s: len(events(s, "BackOff")) >= 2)
    await sim.apply(spec(R3, env={"RELMAN_SIM_FAIL": "unready"}))
    seen += await collect_until(observer, lambda s: len(events(s, "Unhealthy")) >= 2)
    await sim.apply(spec(R1))
    seen += await collect_until(observer, completed(R1))

    assert {e.reason for e in events(seen)} == set(WORDING)
    for event in events(seen):
        source, message = WORDING[event.reason]
        assert re.fullmatch(f"system/k8s/{source}", event.source), event
        assert re.fullmatch(message, event.message), event
    # Pod events come from pods their ReplicaSet announced, and each pod name is unique.
    created = [e.message.removeprefix("Created pod: ") for e in events(seen, "SuccessfulCreate")]
    assert len(created) == len(set(created))
    for event in events(seen):
        if re.fullmatch(f"system/k8s/{POD}", event.source):
            pod = event.source.removeprefix("system/k8s/")
            assert pod in created
            assert pod.rsplit("-", 1)[0] in sim.replica_sets("myapp", "web")


async def test_template_hash_names_are_stable_and_follow_the_pod_template() -> None:
    a, b = SimBackend(pod_delay=0, seed=1), SimBackend(pod_delay=0, seed=2)
    try:
        await a.apply(spec(R1))
        await b.apply(spec(R1))
        assert a.replica_sets("myapp", "web") == b.replica_sets("myapp", "web")
        await a.apply(spec(R1, replicas=3))  # scale only: same template, same ReplicaSet
        assert list(a.replica_sets("myapp", "web")) == list(b.replica_sets("myapp", "web"))
        await a.apply(spec(R1, replicas=3, minimum=75, maximum=125))  # so is the strategy
        assert list(a.replica_sets("myapp", "web")) == list(b.replica_sets("myapp", "web"))
        await a.apply(spec(R1, env={"FOO": "bar"}))  # env changes the pod: a new ReplicaSet
        assert len(a.replica_sets("myapp", "web")) == 2
        checked = spec(R1, env={"FOO": "bar"})
        web = replace(checked.services[0], health=Health(path="/health"))
        await a.apply(replace(checked, services=(web,)))  # so does a health check
        assert len(a.replica_sets("myapp", "web")) == 3
        sized = replace(web, scale=Scale(3, 3, cpu=250, memory=512))
        await a.apply(replace(checked, services=(sized,)))  # and the pods' resources
        assert len(a.replica_sets("myapp", "web")) == 4
        for name in a.replica_sets("myapp", "web"):
            # A decimal FNV-32 hash, safe-encoded: only the images of the ten digits appear.
            assert re.fullmatch(r"web-[4-9bcdf]{1,10}", name), name
    finally:
        await a.close()
        await b.close()


async def test_two_templates_with_the_same_hash_get_their_own_replica_sets(
    sim: SimBackend,
) -> None:
    # These two environments give pod templates whose FNV-32 hashes collide (found by search).
    observer = sim.observe("myapp")
    await sim.apply(spec(R1, env={"FOO": "149599"}))
    await collect_until(observer, completed(R1))
    await sim.apply(spec(R1, env={"FOO": "312382"}))
    await collect_until(observer, completed(R1))
    first, second = sim.replica_sets("myapp", "web")
    assert first == "web-dd998ccfb"
    assert second != first  # moved away by the collision count, not reused
    assert sim.replica_sets("myapp", "web") == {first: 0, second: 2}


async def test_crash_never_completes_and_backs_off_with_growing_restarts(
    sim: SimBackend,
) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R1, replicas=2))
    await collect_until(observer, completed(R1))
    await sim.apply(spec(R2, replicas=2, env={"RELMAN_SIM_FAIL": "crash"}))

    def crashed_three_times(seen: list[Observation]) -> bool:
        return any(s.services[0].restarts >= 3 for s in statuses(seen, R2))

    seen = await collect_until(observer, crashed_three_times)
    assert not any(s.complete for s in statuses(seen, R2))
    backoffs = Counter(e.source for e in events(seen, "BackOff"))
    assert backoffs and max(backoffs.values()) >= 3  # repeated, per pod
    # Old pods keep serving: the rollout stalls at minAvailable (2 - 50% = 1).
    last = statuses(seen, R2)[-1].services[0]
    assert last.available >= 1 and last.updated == 2
    old, new = sim.replica_sets("myapp", "web").values()
    assert (old, new) == (1, 2)


async def test_unready_never_completes_and_reports_failed_readiness(sim: SimBackend) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R1, replicas=3, minimum=100, maximum=150))
    await collect_until(observer, completed(R1))
    unready = {"RELMAN_SIM_FAIL": "unready"}
    await sim.apply(spec(R2, replicas=3, minimum=100, maximum=150, env=unready))
    seen = await collect_until(observer, lambda s: len(events(s, "Unhealthy")) >= 6)
    assert len(events(seen, "Started")) >= 1  # they run ...
    assert not any(s.complete for s in statuses(seen, R2))
    last = sim.status("myapp").services[0]
    assert last.available == 3  # ... but never count; maxUnavailable 0 keeps all old pods
    assert last.restarts == 0
    assert not events(seen, "SuccessfulDelete")


def progressing(status: RolloutStatus) -> tuple[str, str, str]:
    condition = status.services[0].progressing
    assert condition is not None
    return condition.status, condition.reason, condition.message


async def test_conditions_are_the_ones_the_deployment_controller_writes(sim: SimBackend) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec("RAAAAAAAAAA", replicas=3))
    await collect_until(observer, completed("RAAAAAAAAAA"))
    await sim.apply(spec("RBBBBBBBBBB", replicas=3))
    seen = await collect_until(observer, completed("RBBBBBBBBBB"))
    _, new = sim.replica_sets("myapp", "web")
    reasons = [progressing(s)[1] for s in statuses(seen, "RBBBBBBBBBB")]
    # Created, then progressing (lastUpdateTime moving on), then available; in that order.
    assert reasons[0] in ("NewReplicaSetCreated", "ReplicaSetUpdated")
    assert set(reasons) <= {"NewReplicaSetCreated", "ReplicaSetUpdated", "NewReplicaSetAvailable"}
    assert reasons[-1] == "NewReplicaSetAvailable"
    final = statuses(seen, "RBBBBBBBBBB")[-1]
    assert progressing(final) == ("True", "NewReplicaSetAvailable",
                                  f'ReplicaSet "{new}" has successfully progressed.')  # fmt: skip
    available = final.services[0].availability
    assert available is not None
    assert (available.status, available.reason, available.message) == (
        "True",
        "MinimumReplicasAvailable",
        "Deployment has minimum availability.",
    )
    assert final.services[0].ready == 3
    # The Progressing condition stayed True throughout: its transition time never moved.
    conditions = [s.services[0].progressing for s in statuses(seen, "RBBBBBBBBBB")]
    assert len({c.last_transition_time for c in conditions if c is not None}) == 1


async def test_a_stuck_rollout_times_out_strictly_after_its_deadline_and_says_so(
    sim: SimBackend,
) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec("RAAAAAAAAAA", replicas=2))
    await collect_until(observer, completed("RAAAAAAAAAA"))
    stuck = replace(
        spec("RBBBBBBBBBB", env={"RELMAN_SIM_FAIL": "unready"}), progress_deadline_seconds=1
    )
    await sim.apply(stuck)

    def timed_out(items: list[Observation]) -> bool:
        last = items[-1]
        return isinstance(last, RolloutStatus) and progressing(last)[1] == (
            "ProgressDeadlineExceeded"
        )

    # Nothing polls: the sim judges the stuck Deployment again when its deadline has passed.
    seen = await collect_until(observer, timed_out)
    _, new = sim.replica_sets("myapp", "web")
    assert progressing(sim.status("myapp")) == (
        "False",
        "ProgressDeadlineExceeded",
        f'ReplicaSet "{new}" has timed out progressing.',
    )
    stuck_statuses = statuses(seen, "RBBBBBBBBBB")
    last_progress = stuck_statuses[-2].services[0].progressing
    verdict = stuck_statuses[-1].services[0].progressing
    assert last_progress is not None and verdict is not None
    assert last_progress.reason == "ReplicaSetUpdated"
    assert verdict.last_update_time > last_progress.last_update_time + timedelta(seconds=1)
    # A condition is status, not an event: the controller records none for the timeout.
    first_probe = seen.index(events(seen, "Unhealthy")[0])
    assert {e.reason for e in events(seen[first_probe:])} == {"Unhealthy"}


async def test_rollback_reuses_the_old_replica_set_and_completes(sim: SimBackend) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R1, replicas=3))
    await collect_until(observer, completed(R1))
    (good,) = sim.replica_sets("myapp", "web")
    await sim.apply(spec(R2, replicas=3, env={"RELMAN_SIM_FAIL": "crash"}))
    await collect_until(observer, lambda s: len(events(s, "BackOff")) >= 3)
    (_, bad) = sim.replica_sets("myapp", "web")

    await sim.apply(spec(R1, replicas=3))
    seen = await collect_until(observer, completed(R1))
    assert sim.replica_sets("myapp", "web") == {good: 3, bad: 0}  # no third ReplicaSet
    ups = [e.message for e in events(seen, "ScalingReplicaSet") if " up " in e.message]
    assert ups and all(good in m for m in ups)
    assert f"Scaled down replica set {bad} to 0" in [e.message for e in events(seen)]
    pods_of_bad = [e for e in events(seen, "SuccessfulDelete") if e.source.endswith(bad)]
    assert len(pods_of_bad) == 3
    final = statuses(seen, R1)[-1].services[0]
    assert (final.updated, final.total, final.available, final.restarts) == (3, 3, 3, 0)


async def test_every_observer_gets_everything_and_closing_unsubscribes(sim: SimBackend) -> None:
    first, second, third = sim.observe("myapp"), sim.observe("myapp"), sim.observe("myapp")
    await third.aclose()
    await sim.apply(spec(R1))
    seen_first = await collect_until(first, completed(R1))
    seen_second = await collect_until(second, completed(R1))
    assert seen_first == seen_second
    assert len(events(seen_first)) > 0
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(third.__anext__(), DEADLINE)
    assert sim.observer_count("myapp") == 2
    await first.aclose()
    assert sim.observer_count("myapp") == 1
    del second
    gc.collect()  # an observer dropped without aclose() unsubscribes too
    assert sim.observer_count("myapp") == 0


async def test_observers_of_other_apps_see_nothing_of_this_one(sim: SimBackend) -> None:
    other = sim.observe("otherapp")
    mine = sim.observe("myapp")
    await sim.apply(spec(R1))
    await collect_until(mine, completed(R1))
    first = await asyncio.wait_for(other.__anext__(), DEADLINE)
    assert first == RolloutStatus(release_id="", services=())
    await sim.apply(spec(R9, app="otherapp", replicas=1))
    seen = await collect_until(other, completed(R9))
    assert all("relman-myapp" not in e.message for e in events(seen))


async def test_services_left_out_of_the_spec_are_deleted(sim: SimBackend) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R1, services=("web", "worker")))
    await collect_until(observer, completed(R1))
    await sim.apply(spec(R2, services=("web",)))
    seen = await collect_until(observer, completed(R2))
    killed = {e.source for e in events(seen, "Killing")}
    assert sum(s.startswith("system/k8s/worker-") for s in killed) == 2
    assert [s.name for s in statuses(seen, R2)[-1].services] == ["web"]
    assert sim.pods("myapp", "worker") == {}

    await sim.apply(spec(R3, services=()))  # nothing left: every pod goes
    seen = await collect_until(observer, completed(R3))
    assert len(events(seen, "Killing")) == 2
    assert sim.status("myapp") == RolloutStatus(release_id=R3, services=())


async def test_reapplying_the_same_spec_changes_nothing(sim: SimBackend) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R1))
    await collect_until(observer, completed(R1))
    await sim.apply(spec(R1))
    late = sim.observe("myapp")
    await sim.apply(spec(R1))
    # The late observer's first item is the current (complete) snapshot; the re-apply adds
    # nothing, so the next item is the first event of the R2 rollout.
    first = await asyncio.wait_for(late.__anext__(), DEADLINE)
    assert isinstance(first, RolloutStatus) and first.complete
    await sim.apply(spec(R2, replicas=1))
    nxt = await asyncio.wait_for(late.__anext__(), DEADLINE)
    assert isinstance(nxt, BackendEvent) and nxt.reason == "ScalingReplicaSet"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (spec(R1, env={"RELMAN_SIM_FAIL": "sometimes"}), "RELMAN_SIM_FAIL"),
        (spec(R1, replicas=-1), "replicas"),
        (spec(R1, minimum=-10), "maxUnavailable"),
        (spec(R1, maximum=50), "maxSurge"),
        (spec(R1, services=("web", "web")), "duplicate"),
        (spec(R1, services=("Web",)), "service name"),
        (spec(R1, app="My_App"), "app name"),
    ],
)
async def test_bad_spec_is_rejected_and_nothing_changes(
    sim: SimBackend, bad: AppSpec, message: str
) -> None:
    await sim.apply(spec(R0, app="myapp", replicas=1))
    before = (sim.status("myapp"), sim.replica_sets("myapp", "web"), sim.pods("myapp", "web"))
    with pytest.raises(InvalidArgument, match=message):
        await sim.apply(bad)
    after = (sim.status("myapp"), sim.replica_sets("myapp", "web"), sim.pods("myapp", "web"))
    assert after == before


async def test_seed_and_clock_make_a_rollout_repeatable() -> None:
    t0 = datetime(2019, 1, 1, tzinfo=UTC)

    async def run() -> list[Observation]:
        ticks = iter(range(10_000))
        backend = SimBackend(
            pod_delay=0, seed=42, clock=lambda: t0 + timedelta(seconds=next(ticks))
        )
        try:
            observer = backend.observe("myapp")
            await backend.apply(spec(R1, replicas=3))
            return await collect_until(observer, completed(R1))
        finally:
            await backend.close()

    first, second = await run(), await run()
    assert first == second
    assert events(first)[0].time == t0


async def test_pods_take_the_configured_delay_path_and_complete() -> None:
    backend = SimBackend(pod_delay=0.02, seed=3)
    try:
        observer = backend.observe("myapp")
        await backend.apply(spec(R1, replicas=2))
        # apply() returns before any pod is pulled: pod steps run on timers.
        assert backend.status("myapp").services[0].available == 0
        seen = await collect_until(observer, completed(R1))
        assert len(events(seen, "Pulled")) == 2
    finally:
        await backend.close()


async def test_close_ends_observers_stops_pods_and_refuses_further_work() -> None:
    backend = SimBackend(pod_delay=0, retry_interval=0.01, seed=1)
    observer = backend.observe("myapp")
    await backend.apply(spec(R1, env={"RELMAN_SIM_FAIL": "crash"}))
    await collect_until(observer, lambda s: len(events(s, "BackOff")) >= 2)
    await backend.close()
    await asyncio.wait_for(_drain(observer), DEADLINE)  # ends instead of waiting forever
    assert backend.pending_timers() == 0  # crash-looping pods no longer tick
    with pytest.raises(Unavailable):
        await backend.apply(spec(R2))
    late = backend.observe("myapp")
    assert await asyncio.wait_for(_drain(late), DEADLINE) != []  # a snapshot, then the end


async def _drain(observer: AsyncIterator[Observation]) -> list[Observation]:
    return [item async for item in observer]


async def test_two_hundred_apps_with_zero_pod_delay_all_complete() -> None:
    backend = SimBackend(pod_delay=0, seed=5)

    async def promote_twice(i: int) -> Counter[str]:
        app = f"app{i}"
        observer = backend.observe(app)
        await backend.apply(spec(R1, app=app))
        await collect_until(observer, completed(R1), within=120)
        await backend.apply(spec(R2, app=app))
        seen = await collect_until(observer, completed(R2), within=120)
        await observer.aclose()
        return Counter(e.reason for e in events(seen))

    try:
        results = await asyncio.gather(*(promote_twice(i) for i in range(200)))
    finally:
        await backend.close()
    assert len(results) == 200
    for counts in results:
        # 2 new pods started, 2 old pods deleted; every pod event accounted for.
        assert counts["SuccessfulCreate"] == counts["Started"] == counts["Pulled"] == 2
        assert counts["SuccessfulDelete"] == counts["Killing"] == 2
        assert counts["ScalingReplicaSet"] == 3  # new 0->2, old 2->1, old 1->0


def test_get_backend_builds_sim_without_importing_kubernetes() -> None:
    code = (
        "import sys\n"
        "from relman_deployer.backends import get_backend\n"
        "b = get_backend('sim', pod_delay=0)\n"
        "assert b.name == 'sim', b.name\n"
        "assert not any(m == 'kubernetes' or m.startswith('kubernetes.') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_get_backend_rejects_an_unknown_name() -> None:
    with pytest.raises(InvalidArgument, match="unknown backend 'nomad'"):
        get_backend("nomad")
