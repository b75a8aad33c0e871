"""The Deployer's pure parts: guards and their words, listing limits, rollout policy.

(Manifests are parsed by the Release service alone: that a manifest it accepts is deployable
is tested in tests/integration/deployer/test_deployer_one_model.py.)"""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone

import pytest
from relman_common.errors import OLDER_RELEASE, FailedPrecondition, InvalidArgument
from relman_common.lifecycle import Phase
from relman_common.manifest import Port, Scale, Service
from relman_common.vocabulary import page_limit
from relman_deployer.app import leases
from relman_deployer.backends.base import RolloutStatus, ServiceStatus
from relman_deployer.domain import guards, model, policy
from relman_deployer.domain.guards import (
    OLDER_RELEASE_MESSAGE,
    app_busy,
    check_promotable,
    check_timeout,
)
from relman_deployer.domain.model import Deployable, Deployment, Release
from relman_deployer.domain.policy import RolloutPolicy, Verdict
from relman_deployer.rollout import DeploymentCondition

T0 = datetime(2019, 1, 1, tzinfo=UTC)
WEB = (Service("web", "img", scale=Scale(2, 2), command=("bin/web",), port=Port(5000)),)


def release(rid: str, created: datetime, build: str = "BABCDEFGHIJ", **env: str) -> Release:
    return Release(id=rid, app="myapp", build_id=build, created=created, env=env)


def deployable(rel: Release, active: Release | None = None) -> Deployable:
    return Deployable(rel, WEB, active=active, active_services=WEB if active else ())


@pytest.mark.parametrize("module", [guards, model, policy, leases])
def test_doc_examples_hold(module: object) -> None:
    failures, _ = doctest.testmod(module)  # type: ignore[arg-type]
    assert failures == 0


class TestGuards:
    def test_an_older_release_needs_force(self) -> None:
        old = release("RAAAAAAAAAA", T0)
        active = release("RBBBBBBBBBB", T0 + timedelta(minutes=1))
        d = deployable(old, active)
        with pytest.raises(FailedPrecondition, match=f"^{OLDER_RELEASE_MESSAGE}$") as err:
            check_promotable(d, force=False)
        assert err.value.reason == OLDER_RELEASE
        check_promotable(d, force=True)

    def test_the_active_release_and_newer_ones_may_be_promoted(self) -> None:
        active = release("RBBBBBBBBBB", T0)
        check_promotable(deployable(active, active), force=False)
        newer = release("RCCCCCCCCCC", T0 + timedelta(seconds=1))
        check_promotable(deployable(newer, active), force=False)
        check_promotable(deployable(newer), force=False)  # nothing active yet

    def test_busy_message_names_deployment_actor_and_utc_time(self) -> None:
        tz = timezone(timedelta(hours=2))
        running = Deployment(
            "DABCDEFGHIJ", "myapp", "RABCDEFGHIJ", "", "alice", datetime(2019, 1, 1, 2, tzinfo=tz)
        )
        assert str(app_busy(running)) == (
            "app is currently updating (deployment DABCDEFGHIJ, started by alice "
            "at 2019-01-01T00:00:00Z)"
        )

    def test_a_negative_timeout_is_refused(self) -> None:
        check_timeout(0)
        with pytest.raises(InvalidArgument, match="timeout must not be negative") as err:
            check_timeout(-1)
        assert err.value.field == "timeout_seconds"

    def test_page_limit_refuses_negative_limits_and_caps_at_1000(self) -> None:
        with pytest.raises(InvalidArgument):
            page_limit(-1)
        assert (page_limit(0), page_limit(7), page_limit(1000), page_limit(5000)) == (
            10,
            7,
            1000,
            1000,
        )

    def test_cancel_of_a_rollback_in_progress_is_refused(self) -> None:
        d = Deployment("DABCDEFGHIJ", "myapp", "R", "", "a", T0, phase=Phase.ROLLING_BACK)
        with pytest.raises(FailedPrecondition, match="already rolling back"):
            guards.check_cancellable(d)
        for phase in (Phase.STARTING, Phase.PENDING, Phase.UPDATING):
            guards.check_cancellable(
                Deployment("DABCDEFGHIJ", "myapp", "R", "", "a", T0, phase=phase)
            )


TIMED_OUT = DeploymentCondition(
    "Progressing",
    "False",
    "ProgressDeadlineExceeded",
    'ReplicaSet "web-5d4f8b7c9" has timed out progressing.',
    T0,
    T0,
)
PROGRESSING = DeploymentCondition(
    "Progressing", "True", "ReplicaSetUpdated", 'ReplicaSet "web-5d4f8b7c9" is progressing.', T0, T0
)


def web(
    updated: int, total: int, available: int, *conditions: DeploymentCondition, restarts: int = 0
) -> ServiceStatus:
    return ServiceStatus("web", 2, updated, total, available, restarts, available, conditions)


class TestPolicy:
    """The verdict is the backend's (its controller's judge); the backstop, with the deadline
    (30 s) + grace (10 s), only catches a backend that never gives one."""

    def new(self, timeout: int = 30) -> RolloutPolicy:
        return RolloutPolicy("R1", timeout_seconds=timeout, crashloop_threshold=3, now=T0)

    def test_complete_snapshot_of_the_release_succeeds(self) -> None:
        done = RolloutStatus("R1", (ServiceStatus("web", 2, 2, 2, 2),))
        assert self.new().observe(done, T0) == Verdict(succeeded=True)

    def test_the_backends_deadline_verdict_fails_the_rollout_in_its_words(self) -> None:
        p = self.new()
        assert p.observe(RolloutStatus("R1", (web(1, 3, 2, PROGRESSING),)), T0) is None
        stuck = RolloutStatus("R1", (web(1, 3, 2, TIMED_OUT),))
        assert p.observe(stuck, T0 + timedelta(seconds=31)) == Verdict(
            False, 'web: ReplicaSet "web-5d4f8b7c9" has timed out progressing.'
        )

    def test_a_deadline_verdict_left_from_the_rollout_before_is_not_this_ones(self) -> None:
        # A rollback to the release before: the controller keeps the failed rollout's
        # condition until the rollback makes progress.
        p = self.new()
        assert p.observe(RolloutStatus("R0", (web(2, 3, 1, TIMED_OUT),)), T0) is None
        assert p.observe(RolloutStatus("R1", (web(1, 3, 1, TIMED_OUT),)), T0) is None
        assert p.observe(RolloutStatus("R1", (web(2, 2, 2, PROGRESSING),)), T0) == Verdict(True)

    def test_a_deadline_verdict_in_the_first_snapshot_is_not_this_rollouts(self) -> None:
        p = self.new()  # e.g. resumed after a restart: the verdict predates this rollout
        assert p.observe(RolloutStatus("R1", (web(1, 3, 1, TIMED_OUT),)), T0) is None
        assert p.check(T0 + timedelta(seconds=40)) is None
        assert p.check(T0 + timedelta(seconds=41)) is not None  # the backstop

    def test_snapshots_of_another_release_neither_succeed_nor_progress(self) -> None:
        p = self.new()
        other = RolloutStatus("R0", (ServiceStatus("web", 1, 1, 1, 1),))
        assert p.observe(other, T0 + timedelta(seconds=20)) is None
        assert p.check(T0 + timedelta(seconds=40)) is None
        assert p.check(T0 + timedelta(seconds=41)) == Verdict(
            False,
            "the cluster reported nothing of release R1 for 40s "
            "(progress deadline 30s + 10s grace)",
        )

    def test_progress_moves_the_backstop_deadline(self) -> None:
        p = self.new()
        p.observe(RolloutStatus("R1", (web(1, 3, 2),)), T0)
        later = T0 + timedelta(seconds=25)
        p.observe(RolloutStatus("R1", (web(2, 3, 2),)), later)  # one more updated pod
        assert p.check(T0 + timedelta(seconds=64)) is None
        assert p.seconds_left(T0 + timedelta(seconds=64)) == 1.0
        assert p.check(later + timedelta(seconds=40)) is None  # strictly after it
        assert p.check(later + timedelta(seconds=40.001)) == Verdict(
            False,
            "web: no progress for 40s and no verdict from the cluster "
            "(progress deadline 30s + 10s grace)",
        )

    def test_a_change_of_counts_that_is_not_progress_does_not_move_the_deadline(self) -> None:
        p = self.new()
        p.observe(RolloutStatus("R1", (web(1, 3, 2),)), T0)
        worse = RolloutStatus("R1", (web(1, 3, 1, restarts=1),))  # a pod lost, one restart
        assert p.observe(worse, T0 + timedelta(seconds=30)) is None
        assert p.observe(worse, T0 + timedelta(seconds=41)) is not None

    def test_restarts_at_the_threshold_are_a_crash_loop(self) -> None:
        p = self.new()
        two = RolloutStatus("R1", (ServiceStatus("web", 1, 1, 2, 1, restarts=2),))
        three = RolloutStatus("R1", (ServiceStatus("web", 1, 1, 2, 1, restarts=3),))
        assert p.observe(two, T0) is None
        assert p.observe(three, T0) == Verdict(
            False, "pods of web crash-looping (restarted 3 times)"
        )

    def test_an_app_with_no_services_is_complete(self) -> None:
        p = RolloutPolicy("", timeout_seconds=5, crashloop_threshold=3, now=T0)
        assert p.observe(RolloutStatus("", ()), T0) == Verdict(True)
