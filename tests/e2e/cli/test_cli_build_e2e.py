"""``relman build``, ``relman deploy`` and ``relman builds`` against the real services.

Both services run as real processes (SQLite, the embedded ``local`` builder with its OCI
layout, the Deployer's ``sim`` backend); the installed ``relman`` command is run in a source
directory as a user would, and its output compared line by line. Ids are taken from the
output by regex; the builder's own log lines are the Release service's and are checked only
where they are stable (``Building: web``), and always against ``builds logs``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_run import Done, git, run

from .cli_stack import Stack, start_stack

BUILD_ID = r"B[A-Z]{10}"
RELEASE_ID = r"R[A-Z]{10}"
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
SEED = ["Packaging source... OK", "Uploading source... OK", "Starting build... OK"]
MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"
DOCKERFILE = 'FROM scratch\nCOPY . /app\nCMD ["/app/bin/web"]\n'

pytestmark = pytest.mark.xdist_group("cli-real-deployer")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("stack"), "0.05")
    try:
        yield s
    finally:
        s.stop()


def source(stack: Stack, name: str, subject: str = "") -> Path:
    """An app's source directory under the stack's; a clean git tree when ``subject``."""
    root = stack.cwd / name
    (root / "bin").mkdir(parents=True)
    (root / "convox.yml").write_text(MANIFEST)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "bin/web").write_text("#!/bin/sh\nexec sleep 1000\n")
    (root / "bin/web").chmod(0o755)
    (root / ".dockerignore").write_text("*.log\n")
    if subject:
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", subject)
    return root


def app(stack: Stack, name: str) -> None:
    assert stack.relman("apps", "create", name)[0] == 0


def relman(stack: Stack, cwd: Path, *args: str) -> Done:
    return run(list(args), stack.env, cwd=cwd, timeout=120)


def built(done: Done) -> tuple[str, str, list[str]]:
    """(build id, release id, the builder's log lines) of a successful ``relman build``."""
    assert (done.code, done.err) == (0, ""), done
    assert done.lines[:3] == SEED
    build = re.fullmatch(rf"Build: ({BUILD_ID})", done.lines[-2])
    release = re.fullmatch(rf"Release: ({RELEASE_ID})", done.lines[-1])
    assert build and release, done.lines
    return build.group(1), release.group(1), done.lines[3:-2]


def rpc_count(stack: Stack, method: str) -> int:
    assert stack.release.log_path is not None
    log = stack.release.log_path.read_text()
    return len(re.findall(rf"rpc /relman\.v1\.BuildService/{method} ", log))


def test_build_prints_the_seed_lines_the_log_and_the_ids(stack: Stack) -> None:
    app(stack, "web1")
    root = source(stack, "web1", subject="my commit message")
    sha = git(root, "rev-parse", "HEAD")
    build, release, log = built(relman(stack, root, "build", "-a", "web1"))
    assert "Building: web" in log
    # The log printed live is the build's log, whole.
    replay = relman(stack, root, "builds", "logs", build, "-a", "web1")
    assert (replay.code, replay.lines, replay.err) == (0, log, "")

    listing = relman(stack, root, "builds", "-a", "web1")
    assert listing.lines[0].split() == [
        "ID",
        "STATUS",
        "RELEASE",
        "STARTED",
        "ELAPSED",
        "DESCRIPTION",
    ]
    description = f"build {sha[:10]} my commit message"
    assert re.fullmatch(rf"{build}  complete  {release}  .+  \d+s +{description}", listing.lines[1])
    info = relman(stack, root, "builds", "info", build, "-a", "web1").lines
    assert info[:4] == [
        f"Id           {build}",
        "Status       complete",
        f"Release      {release}",
        f"Description  {description}",
    ]
    assert re.fullmatch(r"Started      (?:now|.+ ago)", info[4]), info
    assert re.fullmatch(r"Elapsed      \d+s", info[5]), info
    assert info[6] == f"Git Sha      {sha}"
    assert re.fullmatch(r"Source       [0-9a-f]{64}", info[7]), info
    assert re.fullmatch(r"Images       web=\S+@sha256:[0-9a-f]{64}", info[8]), info
    assert info[-1] == f"Log Lines    {len(log)}"
    releases = relman(stack, root, "releases", "-a", "web1").lines
    assert re.fullmatch(rf"{release} +{build} .* {description}", releases[1])


def test_an_unchanged_tree_is_not_uploaded_again(stack: Stack) -> None:
    app(stack, "web2")
    root = source(stack, "web2", subject="one")
    first = built(relman(stack, root, "build", "-a", "web2"))
    uploads = rpc_count(stack, "UploadSource")
    (root / "build.log").write_text("excluded by .dockerignore, and git ignores nothing\n")
    second = relman(stack, root, "build", "-a", "web2", "-d", "again")
    assert built(second)[0] != first[0]
    assert rpc_count(stack, "UploadSource") == uploads  # the same archive: 0 bytes sent
    info = relman(stack, root, "builds", "info", first[0], "-a", "web2").lines
    again = relman(stack, root, "builds", "info", built(second)[0], "-a", "web2").lines
    assert info[5] == again[5]  # Source: the same sha256


def test_a_large_tree_goes_up_in_chunks_the_service_takes(stack: Stack) -> None:
    app(stack, "web8")
    root = source(stack, "web8")
    (root / "data.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))  # incompressible
    built(relman(stack, root, "build", "-a", "web8"))


def test_an_unknown_app_or_a_bad_manifest_is_said_before_packaging(stack: Stack) -> None:
    root = source(stack, "nosuch")
    done = relman(stack, root, "build", "-a", "nosuch")
    assert (done.code, done.out, done.err) == (1, "", "ERROR: app not found: nosuch\n")
    app(stack, "web9")
    (root / "convox.yml").write_text("services:\n  web:\n    build: ../elsewhere\n")
    done = relman(stack, root, "build", "-a", "web9")
    assert (done.code, done.out) == (1, "")
    assert re.fullmatch(r"ERROR: convox\.yml: manifest line 3: .*build.*inside.*\n", done.err)
    (root / "convox.yml").unlink()
    done = relman(stack, root, "build", "-a", "web9")
    assert (
        done.err
        == "ERROR: no manifest here: give --manifest FILE or add relman.yml or convox.yml\n"
    )


def test_id_prints_only_the_release_on_stdout(stack: Stack) -> None:
    app(stack, "web3")
    root = source(stack, "web3")
    done = relman(stack, root, "build", "--id", "-a", "web3")
    assert done.code == 0, done
    assert re.fullmatch(rf"{RELEASE_ID}\n", done.out), done.out
    err = done.err.splitlines()
    assert err[:3] == SEED
    assert err[-1] == f"Release: {done.out.strip()}"


def test_a_failed_build_shows_its_log_and_fails_with_the_reason(stack: Stack) -> None:
    app(stack, "web4")
    root = source(stack, "web4")
    (root / "Dockerfile").write_text("FROM scratch\nRUN make\nCOPY . /app\n")
    done = relman(stack, root, "build", "-a", "web4")
    assert done.code == 1
    assert done.lines[:3] == SEED
    assert "Building: web" in done.lines[3:]
    error = re.fullmatch(r"ERROR: build failed: (.*RUN.*docker builder.*)\n", done.err)
    assert error, done.err
    listing = relman(stack, root, "builds", "-a", "web4").lines
    assert re.fullmatch(rf"{BUILD_ID}  failed  +\S.*", listing[1])
    assert relman(stack, root, "releases", "-a", "web4").lines[1:] == []  # no release made
    follow = relman(stack, root, "builds", "logs", listing[1].split()[0], "--follow", "-a", "web4")
    assert (follow.code, follow.lines) == (1, done.lines[3:])
    assert follow.err == done.err

    deploy = relman(stack, root, "deploy", "-a", "web4")
    assert deploy.code == 1
    assert not [line for line in deploy.lines if line.startswith("Promoting")]
    assert deploy.err == done.err


def test_deploy_builds_then_promotes_with_the_events(stack: Stack) -> None:
    app(stack, "web5")
    root = source(stack, "web5", subject="deploy me")
    done = relman(stack, root, "deploy", "-a", "web5")
    assert (done.code, done.err) == (0, ""), done
    assert done.lines[:3] == SEED
    promoting = next(i for i, line in enumerate(done.lines) if line.startswith("Promoting "))
    build, release, _ = built(Done(0, "\n".join(done.lines[:promoting]) + "\n", ""))
    assert done.lines[promoting] == f"Promoting {release}..."
    events = done.lines[promoting + 1 : -1]
    assert events and all(re.fullmatch(rf"{RFC3339} system/k8s/\S+ \S.*", e) for e in events)
    assert events[-1].endswith("Status: Updating => Running")
    assert any("@sha256:" in e and "Pulling image" in e for e in events)
    assert done.lines[-1] == "OK"
    releases = relman(stack, root, "releases", "-a", "web5").lines
    assert releases[1].split()[:3] == [release, "active", build]


def test_export_then_import_into_another_app(stack: Stack, tmp_path: Path) -> None:
    app(stack, "web6")
    app(stack, "web7")
    root = source(stack, "web6", subject="exported")
    build, _, _ = built(relman(stack, root, "build", "-a", "web6"))
    archive = tmp_path / "b.tgz"
    exported = relman(stack, root, "builds", "export", build, "-a", "web6", "-f", str(archive))
    assert (exported.code, exported.lines, exported.err) == (0, ["Exporting build... OK"], "")
    assert archive.stat().st_size > 0
    missing = relman(stack, root, "builds", "export", "BNOSUCHBUIL", "-a", "web6", "-f", "x.tgz")
    assert missing.code == 1 and missing.err.startswith("ERROR: ")
    assert not (root / "x.tgz").exists()  # nothing half-written left behind

    imported = relman(stack, root, "builds", "import", "-f", str(archive), "-a", "web7")
    assert (imported.code, imported.err) == (0, ""), imported
    # Convox's line: the release made of the imported build.
    new_release = re.fullmatch(rf"Importing build\.\.\. OK, ({RELEASE_ID})", imported.out.strip())
    assert new_release, imported.out
    made = relman(stack, root, "releases", "info", new_release.group(1), "-a", "web7").lines
    new_build = re.fullmatch(rf"Build +({BUILD_ID})", made[1])
    assert new_build, made
    ours = relman(stack, root, "builds", "info", build, "-a", "web6").lines
    theirs = relman(stack, root, "builds", "info", new_build.group(1), "-a", "web7").lines
    description = next(line for line in ours if line.startswith("Description"))
    assert description in theirs
    # The imported build names the release made of it, as a built one does.
    assert f"Release      {new_release.group(1)}" in theirs
