"""``relman releases promote`` of a release with a release command, against the real services
(processes; SQLite; the Deployer's ``sim`` backend): the command is announced, its output lines
are printed as events before the rollout's, and a failing command makes the promote fail with
the exit code and the last lines while the active release stays."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_stack import Stack, start_stack

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
EVENT = re.compile(rf"({RFC3339}) (system/k8s/\S+) (\S.*)")

pytestmark = pytest.mark.xdist_group("cli-real-deployer")

MANIFEST = """\
release:
  command: bin/migrate --all
services:
  web:
    build: .
    port: 5000
    scale: {count: 1}
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path, "0.05")
    try:
        yield s
    finally:
        s.stop()


def events(lines: list[str]) -> list[tuple[str, str]]:
    """``(source, message)`` of each event line (every line must be one)."""
    parsed = [EVENT.fullmatch(line) for line in lines]
    assert all(parsed), lines
    return [(m.group(2), m.group(3)) for m in parsed if m]


def test_promote_prints_the_release_commands_output_and_fails_with_it(
    stack: Stack, tmp_path: Path
) -> None:
    manifest = tmp_path / "convox.yml"
    manifest.write_text(MANIFEST)
    assert stack.relman("apps", "create", "myapp")[0] == 0
    code, lines, err = stack.relman(
        "builds",
        "import",
        "--manifest",
        str(manifest),
        "--image",
        "web=registry/web:1",
        "-a",
        "myapp",
    )
    assert code == 0, err
    good = lines[-1].removeprefix("Release: ")

    code, lines, err = stack.relman("releases", "promote", good, "-a", "myapp")
    assert (code, err) == (0, "")
    assert (lines[0], lines[-1]) == (f"Promoting {good}...", "OK")
    shown = events(lines[1:-1])
    assert shown[:2] == [
        ("system/k8s/atom/app", "Status: Running => Pending"),
        ("system/k8s/atom/app", "Running release command: bin/migrate --all"),
    ]
    job = [s for s, m in shown if m.startswith("Created pod: web-release-")]
    assert len(job) == 1 and re.fullmatch(r"system/k8s/web-release-d[a-z]{10}", job[0])
    output = [m for s, m in shown if s == job[0] and m.startswith("[sim]")]
    assert output == ["[sim] running bin/migrate --all", "[sim] bin/migrate --all done"]
    done = shown.index((job[0], "[sim] bin/migrate --all done"))
    scaled = [i for i, (_, m) in enumerate(shown) if m.startswith("Scaled up replica set web-")]
    assert scaled and min(scaled) > done  # the rollout comes after the command
    assert shown[-1] == ("system/k8s/atom/app", "Status: Updating => Running")

    code, lines, err = stack.relman(
        "env", "set", "RELMAN_SIM_FAIL=release", "--promote", "-a", "myapp"
    )
    assert code == 1
    bad = lines[1].removeprefix("Release: ")
    shown = events(lines[3:])
    assert shown[-1] == ("system/k8s/atom/app", "Status: Pending => Running")
    assert not [m for _, m in shown if m.startswith("Scaled")]
    failure = re.fullmatch(r"ERROR: deployment (D[A-Z]{10}) failed: (.*)\n", err)
    assert failure, err
    assert failure.group(2) == (
        "release command bin/migrate --all exited with code 1; last output: "
        "[sim] running bin/migrate --all | "
        "[sim] bin/migrate --all failed: RELMAN_SIM_FAIL=release"
    )
    code, lines, _ = stack.relman("releases", "-a", "myapp")
    statuses = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert (statuses[bad], statuses[good]) == ("failed", "active")
