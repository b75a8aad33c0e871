"""``relman apps lock`` / ``unlock`` through the CLI against both services as real processes,
on the embedded default and on PostgreSQL (SPEC 9): while an app is locked, promote,
rollback, deploy-style ``--promote`` and ``env set --promote`` refuse with who locked it, when
and why, and change nothing; ``--force`` goes through and the deployment says so."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ops_stack import DB_KINDS, Stack, new_release, stack_on

pytestmark = pytest.mark.xdist_group("ops-lock")

LOCKED = re.compile(
    r"ERROR: app is locked by admin at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: launch freeze\n"
)


@pytest.fixture(params=DB_KINDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    yield from stack_on(request, tmp_path)


def _info(stack: Stack, *args: str) -> dict[str, str]:
    """The rows of an info block: name, two or more spaces, value."""
    rows = (re.fullmatch(r"(\S.*?)  +(.*)", line) for line in stack.ok(*args).lines)
    return {row.group(1): row.group(2) for row in rows if row}


def _release_ids(stack: Stack) -> list[str]:
    return [line.split()[0] for line in stack.ok("releases", "-a", "myapp").lines[1:]]


def _build_ids(stack: Stack) -> list[str]:
    return [line.split()[0] for line in stack.ok("builds", "-a", "myapp").lines[1:]]


def test_a_locked_app_refuses_every_way_to_deploy_until_forced_or_unlocked(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    first = new_release(stack, "myapp")
    stack.ok("releases", "promote", first, "-a", "myapp")
    second = new_release(stack, "myapp", "registry/web:2")
    assert _info(stack, "apps", "info", "-a", "myapp")["Locked"] == "false"

    done = stack.ok("apps", "lock", "-a", "myapp", "--message", "launch freeze")
    assert done.lines == ["Locking myapp... OK"]
    locked = _info(stack, "apps", "info", "-a", "myapp")["Locked"]
    assert re.fullmatch(r"true, by admin at \S+Z: launch freeze", locked), locked
    # A second lock is refused with the first one's words.
    again = stack.run("apps", "lock", "-a", "myapp", "--message", "other")
    assert again.code == 1 and LOCKED.fullmatch(again.err), again.err

    releases_before = _release_ids(stack)
    builds_before = _build_ids(stack)
    for args in (
        ("deploy",),
        ("releases", "promote", second),
        ("releases", "promote"),
        ("releases", "rollback", first),
        ("env", "set", "A=1", "--promote"),
        (
            "releases",
            "create-from",
            "--use-active-release-build",
            "--env-from",
            second,
            "--promote",
        ),
    ):
        refused = stack.run(*args, "-a", "myapp")
        assert refused.code == 1, args
        assert LOCKED.fullmatch(refused.err), (args, refused.err)
    # Nothing was made or deployed: no release (not even the rollback copy), no deployment.
    assert _release_ids(stack) == releases_before
    assert _build_ids(stack) == builds_before
    assert len(stack.ok("deployments", "-a", "myapp").lines) == 2
    # Changes that do not deploy are still allowed.
    assert stack.ok("env", "set", "B=2", "-a", "myapp").lines[0] == "Setting B... OK"

    forced = stack.ok("releases", "promote", second, "-a", "myapp", "--force")
    assert forced.lines[-1] == "OK"
    deployment = stack.ok("deployments", "-a", "myapp").lines[1].split()[0]
    info = _info(stack, "deployments", "info", deployment)
    override = info["Lock Override"]
    assert re.fullmatch(r"forced past the lock by admin at \S+Z: launch freeze", override), info
    as_json = stack.ok("deployments", "info", deployment, "-o", "json").out
    assert "forced past the lock by admin" in as_json

    rolled = stack.ok("releases", "rollback", first, "-a", "myapp", "--force")
    assert rolled.lines[-1] == "OK"

    assert stack.ok("apps", "unlock", "-a", "myapp").lines == ["Unlocking myapp... OK"]
    assert _info(stack, "apps", "info", "-a", "myapp")["Locked"] == "false"
    not_locked = stack.run("apps", "unlock", "-a", "myapp")
    assert (not_locked.code, not_locked.err) == (1, "ERROR: app myapp is not locked\n")
    assert stack.ok("releases", "promote", "-a", "myapp").lines[-1] == "OK"
    # A deployment of an unlocked app records no override.
    latest = stack.ok("deployments", "-a", "myapp").lines[1].split()[0]
    assert "Lock Override" not in _info(stack, "deployments", "info", latest)


def test_a_lock_needs_a_message_and_an_app_that_exists(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    blank = stack.run("apps", "lock", "-a", "myapp", "--message", "  ")
    assert (blank.code, blank.err) == (1, "ERROR: a lock needs a message: say why (--message)\n")
    missing = stack.run("apps", "lock", "-a", "nope", "--message", "x")
    assert (missing.code, missing.err) == (1, "ERROR: app not found: nope\n")
    assert _info(stack, "apps", "info", "-a", "myapp")["Locked"] == "false"
