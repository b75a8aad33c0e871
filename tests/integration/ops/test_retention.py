"""Release retention through the CLI against both services as real processes, on the
embedded default and on PostgreSQL (SPEC 9): ``releases prune``, ``pin``/``unpin`` and
``RELMAN_KEEP_RELEASES``. Builds are made from source by the embedded local builder, so
each has a real source archive and a real image in the OCI layout; what a prune removes is
checked on disk, and what it keeps too. The Release service is killed with ``kill -9``
between a prune's commit and the deletion of its files: nothing kept is lost, and the next
start deletes what was left. It is also killed inside a prune's transaction, after its first
deletions: nothing of the prune stays, and the prune run again completes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from support.cli_run import RELMAN
from support.helpers import wait_for
from support.ops_stack import DB_KINDS, Stack, stack_on

pytestmark = pytest.mark.xdist_group("ops-retention")

DOCKERFILE = 'FROM scratch\nCOPY . /app\nCMD ["/app/bin/web"]\n'
MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"


@pytest.fixture(params=DB_KINDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    yield from stack_on(request, tmp_path)


@dataclass(frozen=True)
class Made:
    build: str
    release: str
    source: str  # sha256 of its source archive
    digest: str  # of its image


def build(stack: Stack, n: int) -> Made:
    """``relman build`` of a source tree that differs from every other one by ``n``."""
    root = stack.tmp / f"src{n}"
    (root / "bin").mkdir(parents=True)
    (root / "convox.yml").write_text(MANIFEST)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "bin/web").write_text(f"#!/bin/sh\n# version {n}\nexec sleep 1000\n")
    done = stack.ok("build", str(root), "-a", "myapp")
    build_id = done.lines[-2].removeprefix("Build: ")
    info = json.loads(stack.ok("builds", "info", build_id, "-a", "myapp", "-o", "json").out)
    image = info["images"]["web"]
    assert "@sha256:" in image, image
    made = Made(
        build_id,
        done.lines[-1].removeprefix("Release: "),
        info["source_sha256"],
        image.split("@")[1],
    )
    assert kept_on_disk(stack, [made])  # the files checked below are where they are looked for
    return made


def sources(stack: Stack) -> set[str]:
    return {
        p.name
        for p in (stack.data_dir / "sources" / "sha256").iterdir()
        if re.fullmatch(r"[0-9a-f]{64}", p.name)
    }


def images(stack: Stack) -> set[str]:
    index = json.loads((stack.data_dir / "images" / "index.json").read_text())
    return {entry["digest"] for entry in index["manifests"]}


def release_ids(stack: Stack) -> list[str]:
    return [
        line.split()[0] for line in stack.ok("releases", "-a", "myapp", "--limit", "100").lines[1:]
    ]


def garbage_rows(stack: Stack) -> int:
    url = stack.database_url or f"sqlite:///{stack.data_dir / 'release.db'}"
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sqlalchemy.text("SELECT count(*) FROM garbage")).scalar() or 0)
    finally:
        engine.dispose()


def kept_on_disk(stack: Stack, made: list[Made]) -> bool:
    return all(m.source in sources(stack) and m.digest in images(stack) for m in made)


def gone_from_disk(stack: Stack, made: list[Made]) -> bool:
    return all(m.source not in sources(stack) and m.digest not in images(stack) for m in made)


def test_prune_keeps_what_must_stay_and_removes_old_builds_with_their_files(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    b1, b2, b3, b4, b5 = (build(stack, n) for n in range(1, 6))
    stack.ok("releases", "promote", b1.release, "-a", "myapp")
    stack.ok("releases", "promote", b2.release, "-a", "myapp", "--force")  # older than b5's
    assert stack.ok("releases", "pin", b3.release, "-a", "myapp").lines == [
        f"Pinning {b3.release}... OK"
    ]
    env_only = stack.ok("env", "set", "A=1", "-a", "myapp").lines[-1].removeprefix("Release: ")
    before = release_ids(stack)
    assert before == [env_only, b5.release, b4.release, b3.release, b2.release, b1.release]

    dry = stack.ok("releases", "prune", "-a", "myapp", "--keep", "1", "--dry-run")
    assert dry.lines == [
        f"Would prune 2 releases: {b5.release} {b4.release}",
        f"Would prune 1 builds: {b4.build}",
        "Kept 4 releases",
    ]
    assert release_ids(stack) == before

    done = stack.ok("releases", "prune", "-a", "myapp", "--keep", "1")
    assert done.lines == [
        f"Pruned 2 releases: {b5.release} {b4.release}",
        f"Pruned 1 builds: {b4.build}",
        "Kept 4 releases",
    ]
    # The newest (env-only, on b5's build), the pinned, the active and the previous active.
    assert release_ids(stack) == [env_only, b3.release, b2.release, b1.release]
    wait_for(lambda: gone_from_disk(stack, [b4]), timeout=30, what="b4's files to be deleted")
    assert kept_on_disk(stack, [b1, b2, b3, b5])
    assert garbage_rows(stack) == 0

    gone = stack.run("releases", "info", b4.release, "-a", "myapp")
    assert gone.code == 1
    assert re.fullmatch(
        rf"ERROR: release {b4.release} of app myapp was pruned at \S+Z \(release retention\)\n",
        gone.err,
    ), gone.err
    assert "was pruned" in stack.run("builds", "info", b4.build, "-a", "myapp").err
    # The history stays: every deployment is still listed, naming its release.
    history = stack.ok("deployments", "-a", "myapp").lines[1:]
    assert [line.split()[1] for line in history] == [b2.release, b1.release]

    # Rolling back to the previous active release still works after the prune.
    assert stack.ok("releases", "rollback", b1.release, "-a", "myapp").lines[-1] == "OK"

    stack.ok("releases", "unpin", b3.release, "-a", "myapp")
    again = stack.ok("releases", "prune", "-a", "myapp", "--keep", "1")
    # Now active: the rollback copy (newest, on b1's build); previous active: b2. The env-only
    # release goes with b5's build (no kept release uses it now), b3 with its build, b1's
    # release too (its build stays: the copy uses it).
    assert again.lines[0] == f"Pruned 3 releases: {env_only} {b3.release} {b1.release}"
    assert again.lines[1].startswith("Pruned 2 builds: ")
    assert set(again.lines[1].split()[3:]) == {b3.build, b5.build}
    assert again.lines[2] == "Kept 2 releases"
    wait_for(lambda: gone_from_disk(stack, [b3, b5]), timeout=30, what="b3's and b5's files")
    assert kept_on_disk(stack, [b1, b2])
    # The deployment of b1's release stays in the history, marked as of a pruned release.
    history = stack.ok("deployments", "-a", "myapp").lines[1:]
    of_b1 = [line.split()[0] for line in history if line.split()[1] == b1.release]
    info = stack.ok("deployments", "info", of_b1[0]).lines
    assert any(re.fullmatch(rf"Release +{b1.release} \(pruned\)", line) for line in info), info


def test_bad_prune_requests_change_nothing(stack: Stack) -> None:
    stack.ok("apps", "create", "myapp")
    made = build(stack, 1)
    zero = stack.run("releases", "prune", "-a", "myapp", "--keep", "0")
    assert zero.code == 2 and "--keep" in zero.err
    missing = stack.run("releases", "prune", "-a", "nope", "--keep", "1")
    assert (missing.code, missing.err) == (1, "ERROR: app not found: nope\n")
    unknown = stack.run("releases", "pin", "RAAAAAAAAAA", "-a", "myapp")
    assert (unknown.code, unknown.err) == (1, "ERROR: release not found: RAAAAAAAAAA\n")
    assert release_ids(stack) == [made.release]


@contextlib.contextmanager
def layout_locked(stack: Stack) -> Iterator[None]:
    """Holds the OCI layout's lock: image deletions wait for it."""
    with (stack.data_dir / "images" / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def test_a_release_service_killed_between_a_prune_and_its_deletions_loses_nothing_kept(
    stack: Stack,
) -> None:
    stack.ok("apps", "create", "myapp")
    old, active, newest = (build(stack, n) for n in range(1, 4))
    stack.ok("releases", "promote", active.release, "-a", "myapp")
    with layout_locked(stack):
        done = stack.ok("releases", "prune", "-a", "myapp", "--keep", "1")
        assert done.lines[0] == f"Pruned 1 releases: {old.release}"
        # Committed: the rows are gone and the files are listed, but not deleted yet.
        assert garbage_rows(stack) >= 1
        assert stack.release is not None
        stack.release.kill9()
    assert old.digest in images(stack)  # the image's deletion never ran
    assert kept_on_disk(stack, [active, newest])

    stack.start_release()
    wait_for(lambda: garbage_rows(stack) == 0, timeout=30, what="the sweep at start")
    assert gone_from_disk(stack, [old])
    assert kept_on_disk(stack, [active, newest])
    assert release_ids(stack) == [newest.release, active.release]
    # Deploying what was kept works: its image is whole.
    assert stack.ok("releases", "promote", newest.release, "-a", "myapp").lines[-1] == "OK"


def table_counts(stack: Stack) -> dict[str, int]:
    """Rows in the tables a prune deletes from or adds to, read from the database itself."""
    url = stack.database_url or f"sqlite:///{stack.data_dir / 'release.db'}"
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return {
                table: int(
                    conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar() or 0
                )
                for table in ("releases", "builds", "build_logs", "pruned", "garbage")
            }
    finally:
        engine.dispose()


def four_builds_two_promoted(stack: Stack) -> tuple[list[Made], dict[str, int], list[str]]:
    """b1..b4 built, b1 then b2 promoted: ``prune --keep 1`` would remove b3 alone."""
    stack.ok("apps", "create", "myapp")
    made = [build(stack, n) for n in range(1, 5)]
    stack.ok("releases", "promote", made[0].release, "-a", "myapp")
    stack.ok("releases", "promote", made[1].release, "-a", "myapp")
    counts = table_counts(stack)
    assert counts["build_logs"] > 0 and counts["pruned"] == counts["garbage"] == 0
    return made, counts, release_ids(stack)


# ``releases prune --keep 1`` that fails at once when the service dies, and is not sent again
# to the service started after.
PRUNE = [str(RELMAN), "releases", "prune", "-a", "myapp", "--keep", "1"]
NO_RETRIES = {"RELMAN_RETRY_SECONDS": "0"}


def nothing_pruned_then_prune_completes(
    stack: Stack, made: list[Made], counts: dict[str, int], before: list[str]
) -> None:
    """After a kill inside the prune: nothing of it was committed (every row is there, no
    build half gone, no file listed for deletion or deleted); after a restart the prune run
    again completes and keeps what must stay."""
    b1, b2, b3, b4 = made
    wait_for(
        lambda: table_counts(stack) == counts,
        timeout=30,
        what="the killed transaction to be rolled back",
    )
    assert kept_on_disk(stack, made)

    stack.start_release()
    assert release_ids(stack) == before
    for each in made:
        shown = stack.ok("builds", "info", each.build, "-a", "myapp", "-o", "json").out
        assert int(json.loads(shown)["log_lines"]) > 0
    again = stack.ok("releases", "prune", "-a", "myapp", "--keep", "1")
    # Kept: the newest (b4), the active (b2) and the one active before it (b1).
    assert again.lines == [
        f"Pruned 1 releases: {b3.release}",
        f"Pruned 1 builds: {b3.build}",
        "Kept 3 releases",
    ]
    wait_for(lambda: gone_from_disk(stack, [b3]), timeout=30, what="b3's files to be deleted")
    assert kept_on_disk(stack, [b1, b2, b4])
    assert garbage_rows(stack) == 0
    assert release_ids(stack) == [b4.release, b2.release, b1.release]
    assert stack.ok("releases", "promote", b4.release, "-a", "myapp").lines[-1] == "OK"


def test_a_release_service_killed_inside_a_prunes_transaction_loses_nothing(
    stack: Stack,
) -> None:
    """Killed (SIGKILL of itself, support.killed_in_prune) after the prune deleted releases
    and build logs, before it deleted builds and committed."""
    made, counts, before = four_builds_two_promoted(stack)
    assert stack.release is not None
    stack.release.stop()
    crashing = stack.start_release("support.killed_in_prune")
    failed = subprocess.run(
        PRUNE,
        env={**stack.env, **NO_RETRIES},
        cwd=stack.tmp,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 1 and failed.stderr.startswith("ERROR: "), failed
    assert crashing.proc is not None
    assert crashing.proc.wait(30) == -signal.SIGKILL
    nothing_pruned_then_prune_completes(stack, made, counts, before)


@pytest.fixture(params=["postgres"])
def pg_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    yield from stack_on(request, tmp_path)


def test_kill_9_of_a_release_service_blocked_inside_a_prune_loses_nothing(
    pg_stack: Stack,
) -> None:
    """PostgreSQL, no fault hook: the test holds a lock on the build the prune will delete,
    so the prune waits inside its transaction, after it deleted releases and build logs; the
    test sees it waiting there (pg_stat_activity) and kills the service with ``kill -9``."""
    stack = pg_stack
    made, counts, before = four_builds_two_promoted(stack)
    pruned_build = made[2].build
    with (
        psycopg.connect(stack.database_url) as holder,
        psycopg.connect(stack.database_url, autocommit=True) as watcher,
    ):
        holder.execute("SELECT id FROM builds WHERE id = %s FOR UPDATE", (pruned_build,))
        prune = subprocess.Popen(
            PRUNE,
            env={**stack.env, **NO_RETRIES},
            cwd=stack.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def waiting_to_delete_builds() -> bool:
                found = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query ILIKE 'DELETE FROM builds %%'"
                ).fetchone()
                return bool(found and found[0] == 1)

            wait_for(waiting_to_delete_builds, timeout=30, what="the prune waiting on builds")
            assert stack.release is not None
            stack.release.kill9()
            _, err = prune.communicate(timeout=60)
            assert prune.returncode == 1 and err.startswith("ERROR: "), err
        finally:
            if prune.poll() is None:
                prune.kill()
                prune.wait(10)
        holder.rollback()  # the orphaned transaction goes on, finds its client gone, rolls back
    nothing_pruned_then_prune_completes(stack, made, counts, before)


@pytest.fixture(params=DB_KINDS)
def keeping_two(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    yield from stack_on(request, tmp_path, RELMAN_KEEP_RELEASES="2")


def test_keep_releases_prunes_after_each_new_release(keeping_two: Stack) -> None:
    stack = keeping_two
    stack.ok("apps", "create", "myapp")
    first = build(stack, 1)
    stack.ok("releases", "promote", first.release, "-a", "myapp")
    made = [
        stack.ok("env", "set", f"N={n}", "-a", "myapp").lines[-1].removeprefix("Release: ")
        for n in range(4)
    ]
    # The two newest, and the active release.
    assert release_ids(stack) == [made[3], made[2], first.release]
    second = build(stack, 2)
    assert release_ids(stack) == [second.release, made[3], first.release]
    # first's build is used by the active release: it and its files stay.
    assert kept_on_disk(stack, [first, second])
