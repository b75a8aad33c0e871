"""Fail fast: the progress judge ends a rollout at once on pod states that cannot heal, and
the sim produces them (RELMAN_SIM_FAIL=pull, crash, oom) with the kubelet's words; the
diagnostics recorder keeps what ``deployments info`` shows."""

from __future__ import annotations

import asyncio
import doctest
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from relman_common.errors import InvalidArgument
from relman_common.manifest import Scale, Service
from relman_deployer.backends.base import (
    AppSpec,
    BackendEvent,
    Observation,
    PodState,
    RolloutStatus,
    ServiceStatus,
)
from relman_deployer.backends.kubernetes import status as k8s_status
from relman_deployer.backends.sim import SimBackend
from relman_deployer.domain import diagnostics, failfast
from relman_deployer.domain.diagnostics import DiagnosticsRecorder, decode, encode
from relman_deployer.domain.policy import RolloutPolicy, Verdict

T0 = datetime(2019, 1, 1, tzinfo=UTC)
R1, R2 = "RAAAAAAAAAA", "RBBBBBBBBBB"
POD = "web-5d4f8b7c9-rzl2q"
IMAGE = "registry.host/myapp:web.BABCDEFGHI"


@pytest.mark.parametrize("module", [failfast, diagnostics, k8s_status])
def test_doc_examples_hold(module: object) -> None:
    failures, tried = doctest.testmod(module)  # type: ignore[arg-type]
    assert tried > 0 and failures == 0


def policy(threshold: int = 3, grace: float = 30) -> RolloutPolicy:
    return RolloutPolicy(
        R2,
        timeout_seconds=600,
        crashloop_threshold=threshold,
        scheduling_grace_seconds=grace,
        now=T0,
    )


def snapshot(*pods: PodState, release: str = R2, restarts: int = 0) -> RolloutStatus:
    web = ServiceStatus("web", 2, 1, 3, 2, restarts=restarts, ready=2, pods=pods)
    return RolloutStatus(release, (web,))


def judge(*pods: PodState, p: RolloutPolicy | None = None, at: float = 1) -> Verdict | None:
    p = p or policy()
    p.observe(snapshot(release=R1), T0)  # the snapshot from before apply
    return p.observe(snapshot(*pods), T0 + timedelta(seconds=at))


def waiting(reason: str, message: str = "", restarts: int = 0, **more: object) -> PodState:
    return PodState(
        POD,
        phase="Pending",
        restarts=restarts,
        container="main",
        image=IMAGE,
        state="waiting",
        reason=reason,
        message=message,
        **more,  # type: ignore[arg-type]
    )


def test_image_pull_back_off_fails_at_once_naming_service_pod_image_and_condition() -> None:
    verdict = judge(waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"'))
    assert verdict == Verdict(
        False, f'pods of web cannot pull image "{IMAGE}": ImagePullBackOff (pod {POD})'
    )


def test_a_first_err_image_pull_waits_for_the_back_off() -> None:
    p = policy()
    assert judge(waiting("ErrImagePull", "rpc error: not found"), p=p) is None
    verdict = p.observe(snapshot(waiting("ImagePullBackOff")), T0 + timedelta(seconds=2))
    assert verdict is not None and not verdict.succeeded
    assert verdict.reason.endswith(f": ImagePullBackOff (pod {POD})")


def test_err_image_never_pull_and_invalid_image_name_fail_at_once() -> None:
    never = judge(waiting("ErrImageNeverPull"))
    assert never is not None and "cannot pull image" in never.reason
    invalid = judge(waiting("InvalidImageName", 'couldn\'t parse image reference "Bad:Ref"'))
    assert invalid == Verdict(
        False,
        f'pods of web have an invalid image name "{IMAGE}": '
        f'couldn\'t parse image reference "Bad:Ref" (pod {POD})',
    )


def test_crash_loop_back_off_fails_once_restarted_threshold_times() -> None:
    p = policy(threshold=3)
    crash = {"last_termination": "Error", "exit_code": 1}
    assert judge(waiting("CrashLoopBackOff", restarts=2, **crash), p=p) is None
    verdict = p.observe(
        snapshot(waiting("CrashLoopBackOff", restarts=3, **crash)), T0 + timedelta(seconds=5)
    )
    assert verdict == Verdict(
        False,
        "pods of web crash-looping (restarted 3 times): CrashLoopBackOff, "
        f"last exit Error (code 1) (pod {POD})",
    )


def test_a_crashloop_threshold_of_zero_never_fails_on_restarts() -> None:
    p = policy(threshold=0)
    assert judge(waiting("CrashLoopBackOff", restarts=50), p=p) is None


def test_restarts_at_the_threshold_fail_even_between_back_offs() -> None:
    running = PodState(POD, phase="Running", restarts=3, state="running")
    p = policy()
    p.observe(snapshot(release=R1), T0)
    verdict = p.observe(snapshot(running, restarts=3), T0)
    assert verdict == Verdict(False, f"pods of web crash-looping (restarted 3 times) (pod {POD})")


def test_restarts_between_back_offs_name_the_last_exit_when_the_pod_has_one() -> None:
    running = PodState(
        POD, phase="Running", restarts=3, state="running", last_termination="Error", exit_code=3
    )
    p = policy()
    p.observe(snapshot(release=R1), T0)
    verdict = p.observe(snapshot(running, restarts=3), T0)
    assert verdict == Verdict(
        False,
        f"pods of web crash-looping (restarted 3 times): last exit Error (code 3) (pod {POD})",
    )


@pytest.mark.parametrize(
    "pod",
    [
        PodState(POD, phase="Running", state="terminated", reason="OOMKilled", exit_code=137),
        waiting("CrashLoopBackOff", restarts=1, last_termination="OOMKilled", exit_code=137),
    ],
    ids=["terminated", "restarted"],
)
def test_oom_killed_fails_at_once(pod: PodState) -> None:
    assert judge(pod) == Verdict(False, f"pods of web ran out of memory: OOMKilled (pod {POD})")


def test_create_container_config_error_fails_with_the_kubelet_message() -> None:
    verdict = judge(waiting("CreateContainerConfigError", 'secret "env-R2" not found'))
    assert verdict == Verdict(
        False,
        f'pods of web cannot start: CreateContainerConfigError: secret "env-R2" not found '
        f"(pod {POD})",
    )


def test_healing_states_do_not_fail() -> None:
    for pod in (
        waiting("ContainerCreating"),
        PodState(POD, phase="Running", state="running", restarts=1),
        PodState(POD),
    ):
        assert judge(pod) is None, pod


def test_unschedulable_fails_after_the_grace_not_before() -> None:
    p = policy(grace=30)
    pending = PodState(POD, unschedulable="0/2 nodes are available: 2 Insufficient cpu.")
    assert judge(pending, p=p, at=0) is None
    assert p.seconds_left(T0 + timedelta(seconds=10)) == 20
    assert p.check(T0 + timedelta(seconds=29.9)) is None
    assert p.check(T0 + timedelta(seconds=30)) == Verdict(
        False,
        "pods of web cannot be scheduled for 30s: FailedScheduling: 0/2 nodes are available: "
        f"2 Insufficient cpu. (pod {POD})",
    )


def test_a_pod_scheduled_within_the_grace_is_forgiven() -> None:
    p = policy(grace=30)
    pending = PodState(POD, unschedulable="0/2 nodes are available.")
    assert judge(pending, p=p, at=0) is None
    assert p.observe(snapshot(PodState(POD, phase="Running")), T0 + timedelta(seconds=20)) is None
    assert p.check(T0 + timedelta(seconds=31)) is None


def test_pods_of_another_release_are_not_judged() -> None:
    p = policy()
    p.observe(snapshot(release=R1), T0)
    assert p.observe(snapshot(waiting("ImagePullBackOff"), release=R1), T0) is None


def test_policy_prefers_fail_fast_over_complete() -> None:
    """A complete count with a pod of the release unpullable (a surge pod, say) still fails."""
    p = policy()
    p.observe(snapshot(release=R1), T0)
    web = ServiceStatus("web", 1, 1, 1, 1, ready=1, pods=(waiting("ImagePullBackOff"),))
    verdict = p.observe(RolloutStatus(R2, (web,)), T0)
    assert verdict is not None and not verdict.succeeded


# -- the sim's failing pods ---------------------------------------------------------------------


def spec(release: str, fail: str = "") -> AppSpec:
    return AppSpec(
        app="myapp",
        release_id=release,
        build_id="BABCDEFGHI",
        env={"RELMAN_SIM_FAIL": fail} if fail else {},
        services=(Service(name="web", image=IMAGE, scale=Scale(2, 2)),),
    )


@pytest.fixture
async def sim() -> AsyncIterator[SimBackend]:
    backend = SimBackend(pod_delay=0, retry_interval=0.01, seed=7)
    yield backend
    await backend.close()


async def collect_until(
    observer: AsyncIterator[Observation], done: Callable[[list[Observation]], bool]
) -> list[Observation]:
    seen: list[Observation] = []

    async def run() -> list[Observation]:
        async for item in observer:
            seen.append(item)
            if done(seen):
                return seen
        raise AssertionError("observer ended early")

    return await asyncio.wait_for(run(), 20)


def pods_of(seen: list[Observation], release: str) -> list[PodState]:
    return [
        pod
        for o in seen
        if isinstance(o, RolloutStatus) and o.release_id == release
        for s in o.services
        for pod in s.pods
    ]


async def test_sim_pull_failure_reports_err_image_pull_then_back_off(sim: SimBackend) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R2, fail="pull"))
    seen = await collect_until(
        observer, lambda s: any(p.reason == "ImagePullBackOff" for p in pods_of(s, R2))
    )
    reasons = [p.reason for p in pods_of(seen, R2) if p.reason]
    assert reasons.index("ErrImagePull") < reasons.index("ImagePullBackOff")
    assert all(p.image == IMAGE and not p.ready for p in pods_of(seen, R2))
    words = [(e.reason, e.message, e.type) for e in seen if isinstance(e, BackendEvent)]
    assert ("Failed", "Error: ErrImagePull", "Warning") in words
    assert ("Failed", "Error: ImagePullBackOff", "Warning") in words
    assert ("BackOff", f'Back-off pulling image "{IMAGE}"', "Normal") in words
    assert any(
        r == "Failed" and m.startswith(f'Failed to pull image "{IMAGE}": ') for r, m, _ in words
    )
    assert not any(r in ("Pulled", "Started") for r, _, _ in words)
    # ... and the judge ends the rollout on it.
    p = RolloutPolicy(R2, timeout_seconds=600, crashloop_threshold=3, now=T0)
    verdicts = [p.observe(o, T0) for o in seen if isinstance(o, RolloutStatus)]
    assert any(v is not None and "ImagePullBackOff" in v.reason for v in verdicts)


@pytest.mark.parametrize(("fail", "last"), [("crash", "Error"), ("oom", "OOMKilled")])
async def test_sim_crash_and_oom_wait_in_crash_loop_back_off(
    sim: SimBackend, fail: str, last: str
) -> None:
    observer = sim.observe("myapp")
    await sim.apply(spec(R2, fail=fail))
    seen = await collect_until(observer, lambda s: any(p.restarts >= 2 for p in pods_of(s, R2)))
    crashed = [p for p in pods_of(seen, R2) if p.restarts]
    assert all(p.reason == "CrashLoopBackOff" and p.last_termination == last for p in crashed)
    backoffs = [e for e in seen if isinstance(e, BackendEvent) and e.reason == "BackOff"]
    assert backoffs and all(e.type == "Warning" for e in backoffs)


async def test_sim_refuses_an_unknown_failure_mode(sim: SimBackend) -> None:
    with pytest.raises(InvalidArgument, match="crash, unready, pull, oom"):
        await sim.apply(spec(R2, fail="explode"))


# -- diagnostics ---------------------------------------------------------------------------------


def test_recorder_keeps_the_release_counts_pods_and_last_warnings_per_service() -> None:
    r = DiagnosticsRecorder(R2)
    early = BackendEvent(T0, f"system/k8s/{POD}", "Failed", "Error: ErrImagePull", "Warning")
    r.event(early)  # before any status: kept until the service is known
    r.status(snapshot(waiting("ImagePullBackOff"), release=R1))  # another release: ignored
    assert r.snapshot(T0).services == ()
    worker = ServiceStatus("web-worker", 1, 0, 0, 0)
    r.status(RolloutStatus(R2, (*snapshot(waiting("ImagePullBackOff")).services, worker)))
    for n in range(15):
        r.event(BackendEvent(T0, f"system/k8s/{POD}", "BackOff", f"n{n}", "Warning"))
    r.event(BackendEvent(T0, "system/k8s/web-worker-abc-def", "Unhealthy", "probe", "Warning"))
    r.event(BackendEvent(T0, "system/k8s/web", "ScalingReplicaSet", "Scaled up"))
    web, worker_diag = r.snapshot(T0).services
    assert (web.desired, web.updated, web.ready) == (2, 1, 2)
    assert [p.reason for p in web.pods] == ["ImagePullBackOff"]
    assert len(web.events) == diagnostics.EVENTS_KEPT and web.events[-1].message == "n14"
    assert [e.reason for e in worker_diag.events] == ["Unhealthy"]  # the longest name fits
    assert r.failing_pods() == [("web", waiting("ImagePullBackOff"))]
    r.logs(POD, [f"line {n}" for n in range(30)])
    stored = decode(encode(r.snapshot(T0)))
    assert stored == r.snapshot(T0)
    assert stored.services[0].pods[0].logs[0] == "line 10"  # the last LOG_LINES
