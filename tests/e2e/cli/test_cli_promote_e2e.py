"""``relman releases promote / rollback`` and ``deployments`` against the real services.

Both services run as real processes (SQLite, the Deployer's ``sim`` backend); the installed
``relman`` command is run as a user would. Proves: a promotion streams its events and ends
``OK``; a crash-looping release is rolled back and the command fails with the reason; rollback
names the copy; the deployment log replays exactly the lines that were streamed; a Deployer
restart in the middle of a promotion costs the user nothing: every event once, then ``OK``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_run import RELMAN
from support.helpers import wait_for

from .cli_stack import Stack, start_stack

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
EVENT = re.compile(rf"{RFC3339} system/k8s/\S+ \S.*")

pytestmark = pytest.mark.xdist_group("cli-real-deployer")


def _stack(tmp: Path, pod_delay: str) -> Stack:
    return start_stack(tmp, pod_delay)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = _stack(tmp_path, "0.05")
    try:
        yield s
    finally:
        s.stop()


def _events(lines: list[str]) -> list[str]:
    assert all(EVENT.fullmatch(line) for line in lines), lines
    return lines


def test_promote_crash_rollback_and_the_deployment_log(stack: Stack) -> None:
    assert stack.relman("apps", "create", "myapp")[0] == 0
    code, lines, _ = stack.relman(
        "builds", "import", "--image", "web=registry/web:1", "-a", "myapp"
    )
    good = lines[-1].removeprefix("Release: ")

    code, lines, err = stack.relman("releases", "promote", good, "-a", "myapp")
    assert (code, err) == (0, "")
    assert lines[0] == f"Promoting {good}..."
    assert lines[-1] == "OK"
    promoted = _events(lines[1:-1])
    messages = [line.split(" ", 2)[2] for line in promoted]
    assert messages[0] == "Status: Running => Pending"
    assert messages[-1] == "Status: Updating => Running"
    assert any(m.startswith("Scaled up replica set web-") for m in messages)
    code, lines, _ = stack.relman("releases", "-a", "myapp")
    assert lines[1].split()[:2] == [good, "active"]

    code, lines, err = stack.relman(
        "env", "set", "RELMAN_SIM_FAIL=crash", "--promote", "-a", "myapp"
    )
    assert code == 1
    assert lines[0] == "Setting RELMAN_SIM_FAIL... OK"
    bad = lines[1].removeprefix("Release: ")
    assert lines[2] == f"Promoting {bad}..."
    crashed = _events(lines[3:])
    assert any(line.endswith("Status: Updating => Rollback") for line in crashed)
    failure = re.fullmatch(r"ERROR: deployment (D[A-Z]{10}) rolled back: (\S.*)\n", err)
    assert failure, err
    failed_deployment = failure.group(1)

    code, lines, err = stack.relman("releases", "rollback", good, "-a", "myapp")
    assert (code, err) == (0, "")
    copy = re.fullmatch(rf"Rolling back to {good}\.\.\. OK, (R[A-Z]{{10}})", lines[0])
    assert copy, lines[0]
    assert lines[-1] == "OK"
    _events(lines[1:-1])

    code, lines, err = stack.relman(
        "releases",
        "create-from",
        "--use-active-release-build",
        "--use-active-release-env",
        "--promote",
        "-a",
        "myapp",
    )
    assert (code, err) == (0, "")
    assert lines[0] == "Creating release... OK"
    composed = lines[1].removeprefix("Release: ")
    assert lines[2] == f"Promoting {composed}..."
    assert lines[-1] == "OK"
    _events(lines[3:-1])

    code, lines, _ = stack.relman("deployments", "-a", "myapp")
    # The actor is the name of the token the CLI used: the local admin token.
    assert [line.split()[1:4] for line in lines[1:]] == [
        [composed, "succeeded", "admin"],
        [copy.group(1), "succeeded", "admin"],
        [bad, "rolled-back", "admin"],
        [good, "succeeded", "admin"],
    ]
    code, lines, _ = stack.relman("releases", "info", copy.group(1), "-a", "myapp")
    assert "Actor        admin" in lines  # the rollback copy, made by the Deployer for admin
    code, lines, _ = stack.relman("deployments", "logs", failed_deployment, "-a", "myapp")
    assert (code, lines) == (0, crashed)  # the log holds exactly what was streamed
    code, lines, err = stack.relman(
        "deployments", "logs", failed_deployment, "--follow", "-a", "myapp"
    )
    assert (code, lines) == (1, crashed)
    assert err.startswith(f"ERROR: deployment {failed_deployment} rolled back: ")


def test_a_deployer_restart_mid_promotion_costs_the_user_nothing(tmp_path: Path) -> None:
    stack = _stack(tmp_path, "3")  # slow pods: the promotion is still running at the restart
    try:
        stack.relman("apps", "create", "myapp")
        _, lines, _ = stack.relman(
            "builds", "import", "--image", "web=registry/web:1", "-a", "myapp"
        )
        release = lines[-1].removeprefix("Release: ")
        out = tmp_path / "promote.out"
        with out.open("w") as sink:
            proc = subprocess.Popen(
                [str(RELMAN), "releases", "promote", release, "-a", "myapp"],
                stdout=sink,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env=stack.env,
                text=True,
            )
            wait_for(lambda: "Pulling image" in out.read_text(), timeout=60, what="pulling")
            stack.deployer.stop()
            stack.deployer.start(stack.deployer.addr)
            _, err = proc.communicate(timeout=120)
        lines = out.read_text().splitlines()
        assert (proc.returncode, err) == (0, "")
        assert lines[0] == f"Promoting {release}..."
        assert lines[-1] == "OK"
        events = _events(lines[1:-1])
        _, logged, _ = stack.relman("deployments", "-a", "myapp")
        deployment = logged[1].split()[0]
        # The log is the deployment's numbered events: a gap or a repeat would differ.
        assert stack.relman("deployments", "logs", deployment, "-a", "myapp")[1] == events
        # ...and the stream really broke and was resumed with Watch.
        assert "DeployerService/Watch" in stack.deployer.logs()
    finally:
        stack.stop()


def test_deployments_info_shows_why_an_unpullable_release_rolled_back(stack: Stack) -> None:
    """A release whose image cannot be pulled (the sim's RELMAN_SIM_FAIL=pull) rolls back with
    ImagePullBackOff; ``deployments info`` shows the pods and the warnings, as text and JSON."""
    import json

    stack.relman("apps", "create", "myapp")
    stack.relman("builds", "import", "--image", "web=registry/web:1", "--promote", "-a", "myapp")
    code, _, err = stack.relman("env", "set", "RELMAN_SIM_FAIL=pull", "--promote", "-a", "myapp")
    assert code == 1
    failure = re.fullmatch(
        r"ERROR: deployment (D[A-Z]{10}) rolled back: pods of web cannot pull image "
        r'"registry/web:1": ImagePullBackOff \(pod (web-\w+-\w{5})\)\n',
        err,
    )
    assert failure, err
    deployment, pod = failure.groups()

    code, lines, err = stack.relman("deployments", "info", deployment, "-a", "myapp")
    assert (code, err) == (0, "")
    assert "Outcome   rolled-back" in lines
    services = lines.index("SERVICE  DESIRED  UPDATED  READY  AVAILABLE")
    # The Deployment's counts: the old pod still serves (ready 1), the new one never will.
    assert lines[services + 1].split() == ["web", "1", "1", "1", "1"]
    pods = next(i for i, line in enumerate(lines) if line.startswith("POD "))
    assert lines[pods].split() == ["POD", "PHASE", "READY", "RESTARTS", "STATE", "MESSAGE"]
    shown = {line.split()[0]: line.split()[1:] for line in lines[pods + 1 : lines.index("", pods)]}
    assert shown[pod][:4] == ["Pending", "no", "0", "waiting:"]
    assert shown[pod][4] in ("ImagePullBackOff", "ErrImagePull")
    warnings = lines[lines.index("WARNING EVENTS") + 1 :]
    assert warnings and all(EVENT.fullmatch(line) for line in warnings), warnings
    assert any(line.endswith("Failed: Error: ImagePullBackOff") for line in warnings)

    code, lines, err = stack.relman("deployments", "info", deployment, "-o", "json", "-a", "myapp")
    assert (code, err) == (0, "")
    data = json.loads("\n".join(lines))
    assert (data["id"], data["outcome"]) == (deployment, "rolled-back")
    (web,) = data["diagnostics"]
    assert (web["name"], web["desired"], web["updated"]) == ("web", 1, 1)
    by_name = {p["name"]: p for p in web["pods"]}
    assert by_name[pod]["state"] == "waiting" and by_name[pod]["ready"] is False
    assert {"reason": "Failed", "message": "Error: ImagePullBackOff"}.items() <= next(
        e for e in web["events"] if e["message"] == "Error: ImagePullBackOff"
    ).items()
