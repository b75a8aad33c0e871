"""The deployment lifecycle: the one table of phases, triggers, status lines and outcomes. (A
deployment that stops in the middle resuming from its stored phase and sequence number is in
tests/integration/deployer/test_deployer_lifecycle.py.)
"""

from __future__ import annotations

import pytest
from relman_common.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    Outcome,
    Phase,
    Trigger,
    allowed,
    transition,
)

P, T = Phase, Trigger
# (phase, trigger) -> (next phase, the StatusChange it writes, the outcome it ends in)
TABLE: dict[tuple[Phase, Trigger], tuple[Phase, str | None, Outcome | None]] = {
    (P.STARTING, T.START): (P.PENDING, "Status: Running => Pending", None),
    (P.PENDING, T.APPLIED): (P.UPDATING, "Status: Pending => Updating", None),
    (P.PENDING, T.PRE_ROLLOUT_FAILED): (P.ENDED, "Status: Pending => Running", Outcome.FAILED),
    (P.PENDING, T.PRE_ROLLOUT_CANCELLED): (
        P.ENDED,
        "Status: Pending => Running",
        Outcome.CANCELLED,
    ),
    (P.UPDATING, T.SUCCEEDED): (P.ENDED, "Status: Updating => Running", Outcome.SUCCEEDED),
    (P.UPDATING, T.FAILED): (P.ROLLING_BACK, "Status: Updating => Rollback", None),
    (P.UPDATING, T.CANCELLED): (P.ROLLING_BACK, "Status: Updating => Rollback", None),
    (P.ROLLING_BACK, T.RESTORED): (
        P.ENDED,
        "Status: Rollback => Running",
        Outcome.ROLLED_BACK,
    ),
    (P.ROLLING_BACK, T.CANCEL_RESTORED): (
        P.ENDED,
        "Status: Rollback => Running",
        Outcome.CANCELLED,
    ),
    (P.ROLLING_BACK, T.RESTORE_FAILED): (P.ENDED, None, Outcome.FAILED),
    (P.STARTING, T.ERROR): (P.ENDED, None, Outcome.FAILED),
    (P.PENDING, T.ERROR): (P.ENDED, None, Outcome.FAILED),
    (P.UPDATING, T.ERROR): (P.ENDED, None, Outcome.FAILED),
    (P.ROLLING_BACK, T.ERROR): (P.ENDED, None, Outcome.FAILED),
}

SUCCESS = [
    "Status: Running => Pending",
    "Status: Pending => Updating",
    "Status: Updating => Running",
]


def test_the_lifecycle_table_has_exactly_these_transitions() -> None:
    got = {(t.before, t.trigger): (t.after, t.status_message, t.outcome) for t in TRANSITIONS}
    assert got == TABLE
    assert len(TRANSITIONS) == len(TABLE)  # no row twice
    for (phase, trigger), (after, message, outcome) in TABLE.items():
        step = transition(phase, trigger)
        assert (step.after, step.status_message, step.outcome) == (after, message, outcome)
        assert allowed(phase, trigger)
        # Exactly the transitions into `ended` end in an outcome, and never in `running`.
        assert (outcome is not None) == (after is P.ENDED)
        assert outcome is not Outcome.RUNNING


@pytest.mark.parametrize("phase", list(Phase))
def test_a_trigger_the_phase_does_not_allow_raises(phase: Phase) -> None:
    for trigger in Trigger:
        if (phase, trigger) in TABLE:
            continue
        assert not allowed(phase, trigger)
        with pytest.raises(IllegalTransition) as err:
            transition(phase, trigger)
        assert str(err.value) == f"a deployment in phase {phase.value} cannot {trigger.value}"


@pytest.mark.parametrize(
    ("triggers", "statuses", "outcome"),
    [
        ([T.START, T.APPLIED, T.SUCCEEDED], SUCCESS, Outcome.SUCCEEDED),
        (
            [T.START, T.APPLIED, T.FAILED, T.RESTORED],
            [*SUCCESS[:2], "Status: Updating => Rollback", "Status: Rollback => Running"],
            Outcome.ROLLED_BACK,
        ),
        (
            [T.START, T.APPLIED, T.CANCELLED, T.CANCEL_RESTORED],
            [*SUCCESS[:2], "Status: Updating => Rollback", "Status: Rollback => Running"],
            Outcome.CANCELLED,
        ),
        (
            [T.START, T.APPLIED, T.FAILED, T.RESTORE_FAILED],
            [*SUCCESS[:2], "Status: Updating => Rollback"],
            Outcome.FAILED,
        ),
        (
            [T.START, T.PRE_ROLLOUT_FAILED],
            [SUCCESS[0], "Status: Pending => Running"],
            Outcome.FAILED,
        ),
        (
            [T.START, T.PRE_ROLLOUT_CANCELLED],
            [SUCCESS[0], "Status: Pending => Running"],
            Outcome.CANCELLED,
        ),
        ([T.START, T.ERROR], [SUCCESS[0]], Outcome.FAILED),
    ],
)
def test_each_path_writes_the_seed_status_lines_and_ends_once(
    triggers: list[Trigger], statuses: list[str], outcome: Outcome
) -> None:
    phase, written, outcomes = P.STARTING, [], []
    for trigger in triggers:
        step = transition(phase, trigger)
        phase = step.after
        if step.status_message is not None:
            written.append(step.status_message)
        if step.outcome is not None:
            outcomes.append(step.outcome)
    assert (phase, written, outcomes) == (P.ENDED, statuses, [outcome])
