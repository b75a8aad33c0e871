"""Table tests of the progress judge against the Deployment controller's ``syncRolloutStatus``.

The cases follow ``progress_test.go`` and ``deployment_util_test.go`` of Kubernetes 1.20 where
they exist; times come from a fake clock, so no test waits for a deadline.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from relman_deployer.rollout import conditions, progress
from relman_deployer.rollout.conditions import (
    AVAILABLE,
    FALSE,
    FOUND_NEW_REPLICA_SET,
    MINIMUM_REPLICAS_AVAILABLE,
    MINIMUM_REPLICAS_UNAVAILABLE,
    NEW_REPLICA_SET_AVAILABLE,
    NEW_REPLICA_SET_CREATED,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    REPLICA_SET_UPDATED,
    TRUE,
    DeploymentCondition,
    DeploymentStatus,
    get_condition,
    new_condition,
    set_condition,
)
from relman_deployer.rollout.progress import (
    Rollout,
    deployment_progressing,
    deployment_timed_out,
    new_replica_set_condition,
    requeue_after,
    sync_rollout_status,
)

T0 = datetime(2017, 2, 15, 18, 49, tzinfo=UTC)
WEB = Rollout(
    "web", replicas=3, max_unavailable=1, progress_deadline_seconds=60, new_replica_set="web-foo"
)


class FakeClock:
    """A clock tests move by hand (the controller's ``nowFn``)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def counts(
    replicas: int, updated: int, available: int, ready: int | None = None
) -> DeploymentStatus:
    return DeploymentStatus(
        replicas=replicas,
        updated_replicas=updated,
        ready_replicas=available if ready is None else ready,
        available_replicas=available,
    )


def progressing(reason: str, at: datetime = T0, status: str = TRUE) -> DeploymentCondition:
    return DeploymentCondition(PROGRESSING, status, reason, "", at, at)


def with_progressing(status: DeploymentStatus, condition: DeploymentCondition) -> DeploymentStatus:
    return replace(status, conditions=(condition,))


@pytest.mark.parametrize("module", [conditions, progress], ids=lambda m: m.__name__)
def test_worked_examples_in_doc_comments_hold(module: Any) -> None:
    import doctest

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    ("before", "after", "progressed"),
    [
        (counts(4, 1, 3), counts(4, 2, 3), True),  # more updated pods
        (counts(4, 1, 3), counts(3, 1, 3), True),  # fewer old pods (total - updated)
        (counts(4, 1, 3), counts(5, 2, 3), True),  # a new pod, as many old ones: still more
        (counts(4, 1, 2, ready=2), counts(4, 1, 2, ready=3), True),  # more ready pods
        (counts(4, 1, 2), counts(4, 1, 3), True),  # more available pods
        (counts(4, 1, 3), counts(4, 1, 3), False),  # nothing moved
        (counts(4, 1, 3), counts(4, 1, 2), False),  # a pod went unavailable
        (counts(4, 2, 3), counts(3, 1, 3), False),  # the new ReplicaSet lost a pod
    ],
)
def test_progress_is_more_updated_fewer_old_more_ready_or_more_available(
    before: DeploymentStatus, after: DeploymentStatus, progressed: bool
) -> None:
    assert deployment_progressing(before, after) is progressed


def test_progress_compares_counts_only_never_conditions() -> None:
    before = with_progressing(counts(4, 1, 3), progressing(REPLICA_SET_UPDATED))
    assert not deployment_progressing(before, counts(4, 1, 3))


@pytest.mark.parametrize(
    ("rollout", "condition", "seconds_later", "timed_out"),
    [
        (WEB, None, 3600, False),  # no condition: no base to estimate progress from
        (
            replace(WEB, progress_deadline_seconds=None),
            progressing(REPLICA_SET_UPDATED),
            3600,
            False,
        ),
        (WEB, progressing(REPLICA_SET_UPDATED), 59, False),
        (WEB, progressing(REPLICA_SET_UPDATED), 60, False),  # at the deadline: not yet
        (WEB, progressing(REPLICA_SET_UPDATED), 60.000001, True),  # strictly after it
        (WEB, progressing(NEW_REPLICA_SET_CREATED), 61, True),
        (WEB, progressing(NEW_REPLICA_SET_AVAILABLE), 3600, False),  # a finished rollout
        (WEB, progressing(PROGRESS_DEADLINE_EXCEEDED, status=FALSE), 0, True),  # stays so
    ],
)
def test_timed_out_strictly_after_the_last_update_plus_the_deadline(
    rollout: Rollout, condition: DeploymentCondition | None, seconds_later: float, timed_out: bool
) -> None:
    status = counts(3, 3, 1)
    if condition is not None:
        status = with_progressing(status, condition)
    now = T0 + timedelta(seconds=seconds_later)
    assert deployment_timed_out(rollout, status, now) is timed_out


def test_setting_a_condition_keeps_times_as_the_controller_does() -> None:
    clock = FakeClock()
    first = new_condition(AVAILABLE, TRUE, MINIMUM_REPLICAS_AVAILABLE, "a", clock.now)
    status = set_condition(DeploymentStatus(), first)
    # The same status and reason: nothing changes, not even the message or lastUpdateTime.
    again = new_condition(AVAILABLE, TRUE, MINIMUM_REPLICAS_AVAILABLE, "b", clock.advance(5))
    assert set_condition(status, again) == status
    # Another reason, same status: lastTransitionTime stays.
    other = new_condition(AVAILABLE, TRUE, "Other", "c", clock.advance(5))
    changed = get_condition(set_condition(status, other), AVAILABLE)
    assert changed == replace(other, last_transition_time=T0)
    # Another status: both times are new.
    down = new_condition(AVAILABLE, FALSE, MINIMUM_REPLICAS_UNAVAILABLE, "d", clock.advance(5))
    assert get_condition(set_condition(status, down), AVAILABLE) == down


RS_UPDATED = progressing(REPLICA_SET_UPDATED)
TIMED_OUT = progressing(PROGRESS_DEADLINE_EXCEEDED, status=FALSE)
RS_AVAILABLE = progressing(NEW_REPLICA_SET_AVAILABLE)


@pytest.mark.parametrize(
    ("previous", "now", "expected", "times"),
    [
        # Progress keeps lastTransitionTime of a True condition, refreshes lastUpdateTime.
        (with_progressing(counts(3, 2, 2), RS_UPDATED), counts(3, 3, 2),
         (TRUE, REPLICA_SET_UPDATED), "update"),
        # Progress after a timeout: a True condition again, both times new.
        (with_progressing(counts(3, 2, 2), TIMED_OUT), counts(3, 3, 2),
         (TRUE, REPLICA_SET_UPDATED), "both"),
        # Progress with no condition yet creates one.
        (counts(3, 2, 2), counts(3, 3, 2), (TRUE, REPLICA_SET_UPDATED), "both"),
        # Complete: NewReplicaSetAvailable, keeping lastTransitionTime of a True condition ...
        (with_progressing(counts(3, 3, 2), RS_UPDATED), counts(3, 3, 3),
         (TRUE, NEW_REPLICA_SET_AVAILABLE), "update"),
        # ... new times after a timeout, and created when missing.
        (with_progressing(counts(3, 3, 2), TIMED_OUT), counts(3, 3, 3),
         (TRUE, NEW_REPLICA_SET_AVAILABLE), "both"),
        (counts(3, 3, 2), counts(3, 3, 3), (TRUE, NEW_REPLICA_SET_AVAILABLE), "both"),
        # Once complete with one ReplicaSet, nothing is estimated any more (even a lost pod).
        (with_progressing(counts(3, 3, 3), RS_AVAILABLE), counts(3, 3, 2),
         (TRUE, NEW_REPLICA_SET_AVAILABLE), "none"),
        # No progress past the deadline: timed out.
        (with_progressing(counts(3, 2, 2), RS_UPDATED), counts(3, 2, 2),
         (FALSE, PROGRESS_DEADLINE_EXCEEDED), "both"),
        # Timed out already: the condition is left as it is.
        (with_progressing(counts(3, 2, 2), TIMED_OUT), counts(3, 2, 2),
         (FALSE, PROGRESS_DEADLINE_EXCEEDED), "none"),
    ],
)  # fmt: skip
def test_sync_rollout_status_follows_progress_test_go(
    previous: DeploymentStatus, now: DeploymentStatus, expected: tuple[str, str], times: str
) -> None:
    later = T0 + timedelta(minutes=5)  # past the 60 s deadline of every condition above
    status = sync_rollout_status(WEB, previous, now, later)
    condition = get_condition(status, PROGRESSING)
    assert condition is not None
    assert (condition.status, condition.reason) == expected
    update, transition = {
        "update": (later, T0),
        "both": (later, later),
        "none": (T0, T0),
    }[times]
    assert (condition.last_update_time, condition.last_transition_time) == (update, transition)


def test_without_a_deadline_there_is_no_progressing_condition() -> None:
    rollout = replace(WEB, progress_deadline_seconds=None)
    previous = with_progressing(counts(3, 2, 2), RS_UPDATED)
    status = sync_rollout_status(rollout, previous, counts(3, 3, 3), T0)
    assert get_condition(status, PROGRESSING) is None
    assert requeue_after(rollout, previous, T0) is None
    assert new_replica_set_condition(rollout, DeploymentStatus(), created=True, now=T0) == (
        DeploymentStatus()
    )


@pytest.mark.parametrize(
    ("new_replica_set", "reason", "message"),
    [
        ("web-foo", NEW_REPLICA_SET_AVAILABLE, 'ReplicaSet "web-foo" has successfully progressed.'),
        ("web-foo", REPLICA_SET_UPDATED, 'ReplicaSet "web-foo" is progressing.'),
        ("web-foo", PROGRESS_DEADLINE_EXCEEDED, 'ReplicaSet "web-foo" has timed out progressing.'),
        ("", NEW_REPLICA_SET_AVAILABLE, 'Deployment "web" has successfully progressed.'),
        ("", REPLICA_SET_UPDATED, 'Deployment "web" is progressing.'),
        ("", PROGRESS_DEADLINE_EXCEEDED, 'Deployment "web" has timed out progressing.'),
    ],
)
def test_messages_name_the_new_replica_set_or_else_the_deployment(
    new_replica_set: str, reason: str, message: str
) -> None:
    rollout = replace(WEB, new_replica_set=new_replica_set)
    previous = with_progressing(counts(4, 2, 2), RS_UPDATED)
    after = {
        NEW_REPLICA_SET_AVAILABLE: counts(3, 3, 3),
        REPLICA_SET_UPDATED: counts(4, 3, 2),
        PROGRESS_DEADLINE_EXCEEDED: counts(4, 2, 2),
    }[reason]
    status = sync_rollout_status(rollout, previous, after, T0 + timedelta(minutes=5))
    condition = get_condition(status, PROGRESSING)
    assert condition is not None and (condition.reason, condition.message) == (reason, message)


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        (
            1,
            (FALSE, MINIMUM_REPLICAS_UNAVAILABLE, "Deployment does not have minimum availability."),
        ),
        (2, (TRUE, MINIMUM_REPLICAS_AVAILABLE, "Deployment has minimum availability.")),
        (3, (TRUE, MINIMUM_REPLICAS_AVAILABLE, "Deployment has minimum availability.")),
    ],
)
def test_available_means_at_least_replicas_minus_max_unavailable(
    available: int, expected: tuple[str, str, str]
) -> None:
    status = sync_rollout_status(WEB, DeploymentStatus(), counts(3, 3, available), T0)
    condition = get_condition(status, AVAILABLE)
    assert condition is not None
    assert (condition.status, condition.reason, condition.message) == expected


def test_a_rollout_without_max_unavailable_judges_no_availability() -> None:
    rollout = replace(WEB, max_unavailable=None)
    status = sync_rollout_status(rollout, DeploymentStatus(), counts(3, 3, 1), T0)
    assert get_condition(status, AVAILABLE) is None


@pytest.mark.parametrize(
    ("before", "created", "expected"),
    [
        # A new ReplicaSet: NewReplicaSetCreated, whatever was there (here a timeout).
        (TIMED_OUT, True, (TRUE, NEW_REPLICA_SET_CREATED, 'Created new replica set "web-foo"')),
        # An existing one and no Progressing condition: FoundNewReplicaSet.
        (None, False, (TRUE, FOUND_NEW_REPLICA_SET, 'Found new replica set "web-foo"')),
        # An existing one (a rollback to an earlier template): the condition goes on as it was.
        (TIMED_OUT, False, (FALSE, PROGRESS_DEADLINE_EXCEEDED, "")),
        (RS_UPDATED, False, (TRUE, REPLICA_SET_UPDATED, "")),
    ],
)
def test_the_new_replica_set_is_recorded_as_get_new_replica_set_does(
    before: DeploymentCondition | None, created: bool, expected: tuple[str, str, str]
) -> None:
    status = counts(3, 2, 2) if before is None else with_progressing(counts(3, 2, 2), before)
    after = new_replica_set_condition(WEB, status, created=created, now=T0 + timedelta(hours=1))
    condition = get_condition(after, PROGRESSING)
    assert condition is not None
    assert (condition.status, condition.reason, condition.message) == expected


def test_a_second_template_before_any_progress_keeps_the_first_created_condition() -> None:
    # SetDeploymentCondition ignores the same status and reason: the deadline keeps running
    # from the first new ReplicaSet, as in the real controller.
    first = new_replica_set_condition(WEB, DeploymentStatus(), created=True, now=T0)
    second = new_replica_set_condition(
        replace(WEB, new_replica_set="web-bar"), first, created=True, now=T0 + timedelta(seconds=10)
    )
    assert second == first


@pytest.mark.parametrize(
    ("condition", "status", "seconds_later", "expected"),
    [
        (None, counts(3, 3, 2), 0, None),  # no Progressing condition
        (RS_UPDATED, counts(3, 3, 3), 0, None),  # complete
        (TIMED_OUT, counts(3, 3, 0), 0, None),  # failed already
        (RS_UPDATED, counts(3, 3, 1), 30, 30.0),
        (RS_UPDATED, counts(3, 3, 1), 59, 1.0),
        (RS_UPDATED, counts(3, 3, 1), 59.5, 0.5),
        (RS_UPDATED, counts(3, 3, 1), 60, 0.0),
        (RS_UPDATED, counts(3, 3, 1), 120, 0.0),  # overdue: now
    ],
)
def test_a_stuck_rollout_is_requeued_for_its_deadline(
    condition: DeploymentCondition | None,
    status: DeploymentStatus,
    seconds_later: float,
    expected: float | None,
) -> None:
    if condition is not None:
        status = with_progressing(status, condition)
    assert requeue_after(WEB, status, T0 + timedelta(seconds=seconds_later)) == expected


def test_a_rollout_judged_sync_by_sync_with_a_fake_clock() -> None:
    """10 replicas at 25%/25% whose last new pods never get ready; deadline 60 s."""
    clock = FakeClock()
    web = Rollout(
        "web", 10, max_unavailable=2, progress_deadline_seconds=60, new_replica_set="web-new"
    )
    done = with_progressing(counts(10, 10, 10), RS_AVAILABLE)
    status = new_replica_set_condition(web, done, created=True, now=clock.now)

    def sync(replicas: int, updated: int, available: int, after: float) -> str:
        nonlocal status
        now = clock.advance(after)
        status = sync_rollout_status(web, status, counts(replicas, updated, available), now)
        condition = get_condition(status, PROGRESSING)
        assert condition is not None
        return condition.reason

    # Measured against the old template's status (10 updated then): not progress.
    assert sync(13, 3, 10, 1) == NEW_REPLICA_SET_CREATED
    assert sync(11, 3, 8, 1) == REPLICA_SET_UPDATED  # old pods going: progress
    assert sync(11, 3, 8, 30) == REPLICA_SET_UPDATED  # a resync, nothing moved
    assert sync(13, 5, 8, 29) == REPLICA_SET_UPDATED  # two more new pods, 59 s later
    assert sync(13, 5, 7, 59) == REPLICA_SET_UPDATED  # a pod lost: no progress, not late
    assert requeue_after(web, status, clock.now) == 1.0
    assert sync(13, 5, 7, 1) == REPLICA_SET_UPDATED  # exactly at the deadline
    assert sync(13, 5, 7, 0.001) == PROGRESS_DEADLINE_EXCEEDED
    timed_out_at = clock.now
    assert sync(13, 5, 7, 600) == PROGRESS_DEADLINE_EXCEEDED  # it stays so
    condition = get_condition(status, PROGRESSING)
    assert condition is not None and condition.last_update_time == timed_out_at
    assert requeue_after(web, status, clock.now) is None
    assert sync(13, 5, 8, 1) == REPLICA_SET_UPDATED  # ... until progress
