"""What a release command's end means for its deployment (SPEC 8), in the words users see.
Pure: no I/O, no clock.

>>> from relman_deployer.backends.base import CommandOutcome
>>> failure(("bin/migrate", "--all"), 600, CommandOutcome(1, ("migrating", "boom")))
'release command bin/migrate --all exited with code 1; last output: migrating | boom'
>>> failure(("bin/migrate",), 5, CommandOutcome(None, (), timed_out=True))
'release command bin/migrate timed out after 5s; no output'
>>> failure(("bin/migrate",), 5, CommandOutcome(0, ("ok",))) is None
True
"""

from __future__ import annotations

import shlex

from relman_deployer.backends.base import CommandOutcome

# The reason of the events the Deployer writes about a release command.
RELEASE_COMMAND_REASON = "ReleaseCommand"
# How long past its timeout a release command may go without an outcome from the backend
# before the Deployer gives up on it (the backend enforces the timeout itself).
GRACE_SECONDS = 30


def shown(command: tuple[str, ...]) -> str:
    """The command as a shell would take it back.

    >>> shown(("bin/migrate", "a b"))
    "bin/migrate 'a b'"
    """
    return shlex.join(command)


def announcement(command: tuple[str, ...]) -> str:
    return f"Running release command: {shown(command)}"


def skipped_for_rollback(command: tuple[str, ...] | None, target: str) -> str:
    """The event of a rollback that does not run a release command.

    >>> skipped_for_rollback(("bin/migrate",), "RABCDEFGHIJ")
    'Release command not run for a rollback (to RABCDEFGHIJ): bin/migrate'
    >>> skipped_for_rollback(None, "RABCDEFGHIJ")
    'Release command not run for a rollback (to RABCDEFGHIJ)'
    """
    text = f"Release command not run for a rollback (to {target})"
    return f"{text}: {shown(command)}" if command else text


def failure(command: tuple[str, ...], timeout: int, outcome: CommandOutcome) -> str | None:
    """Why the deployment fails, None when the command succeeded."""
    if outcome.succeeded:
        return None
    if outcome.timed_out:
        what = f"timed out after {timeout}s"
    elif outcome.exit_code is None:
        what = "ended without an exit code"
    else:
        what = f"exited with code {outcome.exit_code}"
    lines = f"last output: {' | '.join(outcome.last_lines)}" if outcome.last_lines else "no output"
    return f"release command {shown(command)} {what}; {lines}"
