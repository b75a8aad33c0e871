"""``relman releases promote --dry-run`` (and ``env set --promote --dry-run``) against the real
services as processes (SQLite, the Deployer's ``sim`` backend): the plan is printed, values
masked unless ``--reveal``, ``--exit-code`` says whether anything would change, and nothing is
promoted: the deployments and the releases' statuses stay as they were."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_run import run

from .cli_stack import Stack, start_stack
from .test_cli_build_e2e import SEED, source

pytestmark = pytest.mark.xdist_group("cli-real-deployer")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path, "0.05")
    try:
        yield s
    finally:
        s.stop()


def _state(stack: Stack) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(deployment, outcome) and (release, status) pairs, newest first."""
    deployments = json.loads(stack.run("deployments", "-a", "myapp", "-o", "json").out)
    releases = json.loads(stack.run("releases", "-a", "myapp", "-o", "json").out)
    return [(d["id"], d["outcome"]) for d in deployments], [
        (r["id"], r["status"]) for r in releases
    ]


def test_dry_run_prints_the_plan_masks_values_and_promotes_nothing(stack: Stack) -> None:
    assert stack.relman("apps", "create", "myapp")[0] == 0
    imported = stack.relman("builds", "import", "--image", "web=registry/web:1", "-a", "myapp")
    lines = imported[1]
    first = lines[-1].removeprefix("Release: ")
    assert stack.relman("releases", "promote", first, "-a", "myapp")[0] == 0

    # The active release again: no change, exit 0 even with --exit-code.
    code, lines, err = stack.relman(
        "releases", "promote", first, "--dry-run", "--exit-code", "-a", "myapp"
    )
    assert (code, err) == (0, ""), lines
    assert lines[0] == f"Dry run: promoting {first} over the active release {first}"
    assert "Service web: unchanged" in lines
    assert lines[-1] == "No changes"

    code, lines, _ = stack.relman(
        "env", "set", "API_KEY=hunter2", "--promote", "--dry-run", "--exit-code", "-a", "myapp"
    )
    assert code == 1, lines
    assert lines[:2] == ["Setting API_KEY... OK", lines[1]]
    second = lines[1].removeprefix("Release: ")
    assert lines[2] == f"Dry run: promoting {second} over the active release {first}"
    assert "  + API_KEY" in lines
    assert not [line for line in lines if "hunter2" in line]
    # The sim's objects as a diff: the new env Secret, masked; the Deployment's template.
    assert "+++ b/Secret/env-" + second.lower() in lines
    assert "+  API_KEY: '****'" in lines
    assert f"-    release: {first}" in lines and f"+    release: {second}" in lines
    assert lines[-1] == "Would change the app"
    before = _state(stack)
    assert before[1] == [(second, ""), (first, "active")]

    # Without --exit-code a change still exits 0; --reveal shows values.
    code, lines, _ = stack.relman("releases", "promote", "--dry-run", "--reveal", "-a", "myapp")
    assert code == 0
    assert "  + API_KEY=hunter2" in lines
    assert "+  API_KEY: hunter2" in lines

    code, out, _ = stack.relman(
        "releases", "promote", second, "--dry-run", "-o", "json", "-a", "myapp"
    )
    data = json.loads("\n".join(out))
    assert data["changed"] is True and data["release_id"] == second
    assert data["env"] == [
        {"key": "API_KEY", "change": "added", "old_value": "", "new_value": "****"}
    ]
    secret = next(o for o in data["objects"] if o["kind"] == "Secret")
    assert secret["change"] == "added" and secret["after"]["stringData"] == {"API_KEY": "****"}

    # Nothing was promoted: no deployment, the same release statuses.
    assert _state(stack) == before
    assert len(before[0]) == 1


def test_dry_run_flags_need_each_other(stack: Stack) -> None:
    assert stack.relman("apps", "create", "myapp")[0] == 0
    code, _, err = stack.relman("env", "set", "A=1", "--dry-run", "-a", "myapp")
    assert code == 1 and err.startswith("ERROR: --dry-run goes with --promote"), err
    code, _, err = stack.relman("releases", "promote", "--exit-code", "-a", "myapp")
    assert (code, err) == (1, "ERROR: --exit-code and --reveal go with --dry-run\n")
    # Refused before anything was written: no release was made.
    assert stack.relman("releases", "-a", "myapp")[1] == ["ID  STATUS  BUILD  CREATED  DESCRIPTION"]


def test_deploy_dry_run_builds_then_shows_the_promote_without_making_it(stack: Stack) -> None:
    assert stack.relman("apps", "create", "myapp")[0] == 0
    root = source(stack, "myapp")
    first = run(["deploy", "-a", "myapp"], stack.env, cwd=root, timeout=120)
    assert (first.code, first.lines[-1]) == (0, "OK"), first
    active = json.loads(stack.run("releases", "-a", "myapp", "-o", "json").out)[0]

    (root / "bin/web").write_text("#!/bin/sh\nexec sleep 2000\n")
    done = run(
        ["deploy", "--dry-run", "--exit-code", "--id", "-a", "myapp"],
        stack.env,
        cwd=root,
        timeout=120,
    )
    assert done.code == 1, done
    # --id: stdout holds only the new release's id; the plan goes with the progress.
    new = done.out.strip()
    err = done.err.splitlines()
    assert err[:3] == SEED
    start = err.index(f"Dry run: promoting {new} over the active release {active['id']}")
    assert err[start + 1].startswith(f"Build: {active['build_id']} => B")
    assert err[start + 2] == "Service web: changed"
    assert err[start + 3].startswith("  image: ") and "@sha256:" in err[start + 3]
    assert err[-1] == "Would change the app"
    assert not [line for line in err if line.startswith("Promoting")]
    deployments, releases = _state(stack)
    assert len(deployments) == 1
    assert releases[:2] == [(new, ""), (active["id"], "active")]
