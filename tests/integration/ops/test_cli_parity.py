"""Where the seed page is silent, relman's CLI prints what Convox's CLI prints (its
pkg/cli/*_test.go): the ``apps`` header, the ``Locked`` row of ``apps info``, ``apps cancel
APP``, ``env edit`` (one release for the whole edit), ``releases promote --wait``, the
``builds`` table, the rows of ``builds info``, the line of ``builds import -f`` and ``env
--reveal``, through the installed command against both services on the embedded default and
on PostgreSQL."""

from __future__ import annotations

import doctest
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from relman_cli.commands import env as env_command
from support.cli_run import RELMAN, run_on_a_terminal
from support.helpers import wait_for
from support.ops_stack import DB_KINDS, MANIFEST, Stack, new_release, stack_on

pytestmark = pytest.mark.xdist_group("ops-parity")


@pytest.fixture(params=DB_KINDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    yield from stack_on(request, tmp_path)


def test_the_edit_rule_examples_hold() -> None:
    assert doctest.testmod(env_command).failed == 0


def test_apps_listing_and_info_read_as_convox_prints_them(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    release = new_release(stack, "myapp")
    stack.ok("releases", "promote", release, "-a", "myapp")
    listed = stack.ok("apps").lines
    assert listed == ["APP    STATUS   RELEASE", f"myapp  running  {release}"]
    info = stack.ok("apps", "info", "myapp").lines
    assert info[:4] == [
        "Name     myapp",
        "Status   running",
        "Locked   false",
        f"Release  {release}",
    ]
    stack.ok("apps", "lock", "-a", "myapp", "-m", "audit")
    locked = stack.ok("apps", "info", "-a", "myapp").lines[2]
    assert re.fullmatch(r"Locked   true, by admin at \S+Z: audit", locked), locked


def test_apps_cancel_takes_the_app_as_an_argument(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    release = new_release(stack, "myapp")
    nothing = stack.run("apps", "cancel", "myapp")
    assert nothing.code == 1
    assert nothing.out == "Cancelling deployment of myapp... "
    assert nothing.err == "ERROR: app myapp has no running deployment to cancel\n"
    # -a still works, and the argument wins over RELMAN_APP.
    assert stack.run("apps", "cancel", "-a", "myapp").err == nothing.err
    assert new_release(stack, "myapp", "registry/web:2") != release


def write_editor(tmp: Path, script: str) -> Path:
    editor = tmp / "editor.sh"
    editor.write_text(f"#!/bin/sh\nset -e\n{script}\n")
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    return editor


def run_with_editor(stack: Stack, editor: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RELMAN), *args],
        env={**stack.env, "EDITOR": str(editor), "VISUAL": str(editor)},
        cwd=stack.tmp,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_env_edit_makes_one_release_of_what_the_edit_changed(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    new_release(stack, "myapp")
    stack.ok("env", "set", "KEEP=1", "CHANGE=old", "DROP=x", "-a", "myapp")
    before = stack.ok("releases", "-a", "myapp").lines[1:]
    # The editor changes one key, removes one and adds one; KEEP is left as it was.
    editor = write_editor(
        stack.tmp,
        "sed -i -e 's/^CHANGE=old$/CHANGE=new/' -e '/^DROP=/d' \"$1\"\necho 'ADD=a=b' >> \"$1\"",
    )
    done = run_with_editor(stack, editor, "env", "edit", "-a", "myapp")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Updating environment... OK"
    release = lines[1].removeprefix("Release: ")
    after = stack.ok("releases", "-a", "myapp").lines[1:]
    assert len(after) == len(before) + 1
    assert after[0].split()[0] == release
    assert after[0].endswith("env add:ADD change:CHANGE remove:DROP")
    assert stack.ok("env", "-a", "myapp").lines == ["ADD=a=b", "CHANGE=new", "KEEP=1"]

    untouched = run_with_editor(
        stack, write_editor(stack.tmp, "true"), "env", "edit", "-a", "myapp"
    )
    assert untouched.returncode == 0
    assert untouched.stdout == "Nothing changed; no release was created\n"
    assert len(stack.ok("releases", "-a", "myapp").lines[1:]) == len(after)


@pytest.fixture(params=DB_KINDS)
def slow_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Pods that take 3 s to start: a deployment runs long enough to be waited for."""
    yield from stack_on(request, tmp_path, pod_delay="3")


def test_promote_wait_waits_for_the_running_deployment_then_promotes(slow_stack: Stack) -> None:
    stack = slow_stack
    stack.ok("apps", "create", "myapp")
    first = new_release(stack, "myapp")
    second = new_release(stack, "myapp", "registry/web:2")
    running = subprocess.Popen(
        [str(RELMAN), "releases", "promote", first, "-a", "myapp"],
        env=stack.env,
        cwd=stack.tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: "running" in stack.ok("deployments", "-a", "myapp").out,
            timeout=30,
            what="the first deployment running",
        )
        busy = stack.run("releases", "promote", second, "-a", "myapp")
        assert busy.code == 1 and "app is currently updating" in busy.err
        waited = stack.run("releases", "promote", second, "-a", "myapp", "--wait")
        assert waited.code == 0, waited.err
        lines = waited.lines
        assert re.fullmatch(r"Waiting for deployment D[A-Z]{10}\.\.\. OK", lines[0]), lines[:2]
        assert lines[1] == f"Promoting {second}..."
        assert lines[-1] == "OK"
    finally:
        assert running.wait(60) == 0
    # Nothing running: --wait promotes at once.
    again = stack.run("releases", "promote", second, "-a", "myapp", "--wait")
    assert again.lines[0] == f"Promoting {second}..."


DOCKERFILE = 'FROM scratch\nCOPY . /app\nCMD ["/app/bin/web"]\n'
AGO = r"(?:now|\d+ seconds? ago|1 minute ago)"  # everything here is seconds old


def test_builds_listing_info_and_import_read_as_convox_prints_them(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    stack.ok("apps", "create", "staging")
    root = stack.tmp / "src"
    (root / "bin").mkdir(parents=True)
    (root / "convox.yml").write_text(MANIFEST)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "bin/web").write_text("#!/bin/sh\nexec sleep 1000\n")
    built = stack.ok("build", str(root), "-a", "myapp", "-d", "desc").lines
    build = built[-2].removeprefix("Build: ")
    release = built[-1].removeprefix("Release: ")

    listed = stack.ok("builds", "-a", "myapp").lines
    assert listed[0].split() == ["ID", "STATUS", "RELEASE", "STARTED", "ELAPSED", "DESCRIPTION"]
    assert re.fullmatch(rf"{build}  complete  {release}  {AGO} +\d+s +desc", listed[1]), listed

    info = stack.ok("builds", "info", build, "-a", "myapp").lines
    assert info[:4] == [
        f"Id           {build}",
        "Status       complete",
        f"Release      {release}",
        "Description  desc",
    ]
    assert re.fullmatch(rf"Started      {AGO}", info[4]), info
    assert re.fullmatch(r"Elapsed      \d+s", info[5]), info
    # What relman adds comes after Convox's rows.
    assert [line.split("  ")[0] for line in info[6:]] == [
        "Git Sha",
        "Source",
        "Images",
        "Created",
        "Ended",
        "Log Lines",
    ]

    archive = stack.tmp / "b.tgz"
    stack.ok("builds", "export", build, "-a", "myapp", "-f", str(archive))
    imported = stack.ok("builds", "import", "-f", str(archive), "-a", "staging")
    match = re.fullmatch(r"Importing build\.\.\. OK, (R[A-Z]{10})", imported.out.rstrip("\n"))
    assert match, imported.out
    made = match.group(1)
    assert stack.ok("releases", "-a", "staging").lines[1].split()[0] == made
    # --id: the release id alone on stdout, Convox's line on stderr.
    quiet = stack.ok("builds", "import", "-f", str(archive), "-a", "staging", "--id")
    assert re.fullmatch(r"R[A-Z]{10}", quiet.out.strip()), quiet.out
    assert quiet.err == f"Importing build... OK, {quiet.out.strip()}\n"


def test_env_masks_on_a_terminal_unless_revealed_and_never_when_piped(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    new_release(stack, "myapp")
    stack.ok("env", "set", "FOO=bar", "BAZ=quux", "-a", "myapp")
    args = ["env", "-a", "myapp"]
    assert run_on_a_terminal(args, stack.env, stack.tmp).splitlines() == ["BAZ=****", "FOO=****"]
    revealed = run_on_a_terminal([*args, "--reveal"], stack.env, stack.tmp)
    assert revealed.splitlines() == ["BAZ=quux", "FOO=bar"]
    # Piped, as Convox: the values, with or without --reveal; env get never masks.
    assert stack.ok(*args).lines == ["BAZ=quux", "FOO=bar"]
    assert stack.ok(*args, "--reveal").lines == ["BAZ=quux", "FOO=bar"]
    assert run_on_a_terminal(["env", "get", "FOO", "-a", "myapp"], stack.env, stack.tmp) == "bar\n"
    masked_json = run_on_a_terminal([*args, "-o", "json"], stack.env, stack.tmp)
    assert "quux" not in masked_json and "bar" not in masked_json
