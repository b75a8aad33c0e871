"""The states of builds, releases and deployments, and the one table of a deployment's life.

Every other module asks this one: the Deployer's runner (what to do next, which StatusChange
to write), its store (which phase a resumed deployment is in), the Release service (a
release's status from its last deployment) and the CLI (the words it prints). Nothing here
does I/O.

A deployment moves through phases; each transition is one row of :data:`TRANSITIONS`: the
phase it leaves, what happened, the phase it enters, the app status change it writes as a
``StatusChange`` event (the seed's ``Status: Running => Pending`` lines) and, for the last
one, the outcome it ends in. A successful promote:

>>> phase = Phase.STARTING
>>> for trigger in (Trigger.START, Trigger.APPLIED, Trigger.SUCCEEDED):
...     t = transition(phase, trigger)
...     phase = t.after
...     print(t.status_message, t.outcome)
Status: Running => Pending None
Status: Pending => Updating None
Status: Updating => Running succeeded
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self is not Outcome.RUNNING


class Kind(StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class BuildStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


class ReleaseStatus(StrEnum):
    """The STATUS column of ``relman releases`` (empty: nothing to say)."""

    NONE = ""
    ACTIVE = "active"
    PROMOTING = "promoting"
    FAILED = "failed"


class TokenKind(StrEnum):
    ADMIN = "admin"
    SERVICE = "service"
    USER = "user"


def release_status(release_id: str, active_id: str, last_outcome: Outcome | None) -> ReleaseStatus:
    """``active`` for the app's active release; else ``promoting`` while a deployment of it
    runs; else ``failed`` when its last deployment was rolled back or failed; else none.

    >>> release_status("R1", "R1", Outcome.RUNNING), release_status("R2", "R1", Outcome.RUNNING)
    (<ReleaseStatus.ACTIVE: 'active'>, <ReleaseStatus.PROMOTING: 'promoting'>)
    >>> release_status("R2", "R1", Outcome.ROLLED_BACK), release_status("R2", "", None)
    (<ReleaseStatus.FAILED: 'failed'>, <ReleaseStatus.NONE: ''>)
    """
    if active_id and release_id == active_id:
        return ReleaseStatus.ACTIVE
    if last_outcome is Outcome.RUNNING:
        return ReleaseStatus.PROMOTING
    if last_outcome in (Outcome.ROLLED_BACK, Outcome.FAILED):
        return ReleaseStatus.FAILED
    return ReleaseStatus.NONE


def outcome_may_follow(before: Outcome | None, after: Outcome) -> bool:
    """Whether a deployment recorded as ``before`` may be recorded as ``after``: a running
    deployment may end any way, an ended one never changes (a late ``running`` is stale).

    >>> outcome_may_follow(None, Outcome.RUNNING)
    True
    >>> outcome_may_follow(Outcome.RUNNING, Outcome.FAILED)
    True
    >>> outcome_may_follow(Outcome.SUCCEEDED, Outcome.RUNNING)
    False
    """
    return before is None or (before is Outcome.RUNNING and after is not Outcome.RUNNING)


class AppStatus(StrEnum):
    RUNNING = "Running"
    PENDING = "Pending"
    UPDATING = "Updating"
    ROLLBACK = "Rollback"


class Phase(StrEnum):
    """Where a deployment is; stored with the event that entered it."""

    STARTING = "starting"  # stored, nothing written to its log yet
    PENDING = "pending"  # the app is told a change is coming
    UPDATING = "updating"  # the release is applied and rolling out
    ROLLING_BACK = "rolling-back"  # the previous release is being restored
    ENDED = "ended"

    @property
    def rolling_back(self) -> bool:
        return self is Phase.ROLLING_BACK


class Trigger(StrEnum):
    START = "start"
    APPLIED = "applied"  # the backend reports on the new release
    SUCCEEDED = "succeeded"  # every service runs the release
    FAILED = "failed"  # the rollout cannot finish
    CANCELLED = "cancelled"
    PRE_ROLLOUT_FAILED = "pre-rollout-failed"  # failed before any rollout step
    PRE_ROLLOUT_CANCELLED = "pre-rollout-cancelled"  # cancelled before any rollout step
    RESTORED = "restored"  # the previous release runs again
    CANCEL_RESTORED = "cancel-restored"
    RESTORE_FAILED = "restore-failed"
    ERROR = "error"  # an unexpected error: ends it at once


@dataclass(frozen=True)
class Transition:
    before: Phase
    trigger: Trigger
    after: Phase
    status: tuple[AppStatus, AppStatus] | None = None
    outcome: Outcome | None = None

    @property
    def status_message(self) -> str | None:
        """``Status: Running => Pending``: the StatusChange event this transition writes."""
        if self.status is None:
            return None
        return f"Status: {self.status[0].value} => {self.status[1].value}"


P, T, S, End = Phase, Trigger, AppStatus, Outcome
TRANSITIONS: tuple[Transition, ...] = (
    # before, trigger, after, the StatusChange it writes, the outcome it ends in (End)
    Transition(P.STARTING, T.START, P.PENDING, (S.RUNNING, S.PENDING)),
    Transition(P.PENDING, T.APPLIED, P.UPDATING, (S.PENDING, S.UPDATING)),
    Transition(P.PENDING, T.PRE_ROLLOUT_FAILED, P.ENDED, (S.PENDING, S.RUNNING), End.FAILED),
    Transition(P.PENDING, T.PRE_ROLLOUT_CANCELLED, P.ENDED, (S.PENDING, S.RUNNING), End.CANCELLED),
    Transition(P.UPDATING, T.SUCCEEDED, P.ENDED, (S.UPDATING, S.RUNNING), End.SUCCEEDED),
    Transition(P.UPDATING, T.FAILED, P.ROLLING_BACK, (S.UPDATING, S.ROLLBACK)),
    Transition(P.UPDATING, T.CANCELLED, P.ROLLING_BACK, (S.UPDATING, S.ROLLBACK)),
    Transition(P.ROLLING_BACK, T.RESTORED, P.ENDED, (S.ROLLBACK, S.RUNNING), End.ROLLED_BACK),
    Transition(P.ROLLING_BACK, T.CANCEL_RESTORED, P.ENDED, (S.ROLLBACK, S.RUNNING), End.CANCELLED),
    Transition(P.ROLLING_BACK, T.RESTORE_FAILED, P.ENDED, None, End.FAILED),
    *(
        Transition(phase, T.ERROR, P.ENDED, None, End.FAILED)
        for phase in (P.STARTING, P.PENDING, P.UPDATING, P.ROLLING_BACK)
    ),
)
_TABLE = {(t.before, t.trigger): t for t in TRANSITIONS}


class IllegalTransition(Exception):
    """A trigger that the current phase does not allow: a bug in the caller."""


def transition(phase: Phase, trigger: Trigger) -> Transition:
    """The row for ``trigger`` in ``phase``; IllegalTransition when there is none.

    >>> transition(Phase.ENDED, Trigger.START)
    Traceback (most recent call last):
    ...
    relman_common.lifecycle.IllegalTransition: a deployment in phase ended cannot start
    """
    row = _TABLE.get((phase, trigger))
    if row is None:
        raise IllegalTransition(f"a deployment in phase {phase.value} cannot {trigger.value}")
    return row


def allowed(phase: Phase, trigger: Trigger) -> bool:
    return (phase, trigger) in _TABLE
