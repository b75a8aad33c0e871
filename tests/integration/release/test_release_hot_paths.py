"""The hot paths stay lean: what each call asks of the database, on SQLite and PostgreSQL. Each
test pins down a behaviour the fast path must keep. (The conversions every listing row goes
through are in tests/unit/release/test_release_hot_paths.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from relman_common.db import DbExecutor
from relman_common.errors import AlreadyExists, NotFound
from relman_common.lifecycle import Outcome
from relman_common.vocabulary import DEPLOYMENT, new_id
from relman_release.app import apps, builds, deployments, env, releases
from relman_release.domain.model import DeploymentReport
from relman_release.store.uow import GroupedWrites, SqlUnitOfWork, open_store
from sqlalchemy import event

from .conftest import new_box

MANIFEST = "services:\n  web:\n    port: 3000\n"


@contextmanager
def statements(uow: SqlUnitOfWork) -> Iterator[list[str]]:
    """The SQL statements sent to the database inside the block."""
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(uow.engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(uow.engine, "before_cursor_execute", capture)


def activate(uow: SqlUnitOfWork, release_id: str, app: str = "myapp") -> None:
    """What the Deployer reports when a newly started deployment of the release succeeds."""
    report = DeploymentReport(
        new_id(DEPLOYMENT), app, release_id, Outcome.SUCCEEDED, "", datetime.now(UTC)
    )
    assert deployments.report_deployment(uow, None, report).current


@pytest.fixture
def uow(db_url: str) -> Iterator[SqlUnitOfWork]:
    store = open_store(db_url, new_box())
    yield store
    store.engine.dispose()


def test_release_create_writes_one_row_and_never_reads_the_build_manifest(
    uow: SqlUnitOfWork,
) -> None:
    apps.create_app(uow, "myapp", "t")
    build = builds.import_build(uow, "myapp", MANIFEST, {"web": "img:1"}, "", "", "t").build

    with statements(uow) as seen:
        release = releases.create_release(uow, "myapp", build.id, {"A": "1"}, "d", "t")

    sql = [s for s in seen if not s.startswith(("BEGIN", "SELECT 1"))]
    # The app (locked) and its build's owner in one SELECT, then the row and the app's latest.
    assert [s.split()[0] for s in sql] == ["SELECT", "INSERT", "UPDATE"], sql
    assert not any("manifest" in s for s in sql), sql
    assert releases.get_release(uow, "myapp", release.id).env == {"A": "1"}
    assert apps.get_app(uow, "myapp").latest_release_id == release.id


def test_release_create_refuses_a_build_of_another_app_and_writes_nothing(
    uow: SqlUnitOfWork,
) -> None:
    apps.create_app(uow, "myapp", "t")
    apps.create_app(uow, "other", "t")
    theirs = builds.import_build(uow, "other", MANIFEST, {"web": "img:1"}, "", "", "t").build
    releases.create_release(uow, "myapp", "", {}, "first", "t")
    before = releases.list_releases(uow, "myapp", 100, "").items

    with pytest.raises(NotFound, match=f"build {theirs.id} not found in app myapp"):
        releases.create_release(uow, "myapp", theirs.id, {}, "d", "t")
    with pytest.raises(NotFound, match="build not found: BZZZZZZZZZZ"):
        releases.create_release(uow, "myapp", "BZZZZZZZZZZ", {}, "d", "t")
    with pytest.raises(NotFound, match="app not found: nosuchapp"):  # the app is checked first
        releases.create_release(uow, "nosuchapp", theirs.id, {}, "d", "t")

    assert releases.list_releases(uow, "myapp", 100, "").items == before


def test_env_change_reads_the_latest_release_once_when_it_is_also_the_active_one(
    uow: SqlUnitOfWork,
) -> None:
    apps.create_app(uow, "myapp", "t")
    first = env.change_env(uow, "myapp", {"A": "1"}, [], False, "t").release
    assert first is not None
    activate(uow, first.id)

    with statements(uow) as seen:
        changed = env.change_env(uow, "myapp", {"B": "2"}, [], False, "t")

    release_reads = [s for s in seen if s.startswith("SELECT") and "FROM releases" in s]
    assert len(release_reads) == 1, release_reads
    assert changed.warning == ""  # same build as the active release: nothing to warn about
    assert changed.release is not None and changed.release.env == {"A": "1", "B": "2"}


def test_an_app_created_twice_is_refused_and_the_first_one_stays(uow: SqlUnitOfWork) -> None:
    created = apps.create_app(uow, "myapp", "alice")
    with pytest.raises(AlreadyExists, match="app already exists: myapp"):
        apps.create_app(uow, "myapp", "bob")
    assert apps.get_app(uow, "myapp").actor == created.actor == "alice"
    assert [a.name for a in apps.list_apps(uow)] == ["myapp"]


def test_listing_pages_carry_status_and_continue_where_the_last_page_ended(
    uow: SqlUnitOfWork,
) -> None:
    apps.create_app(uow, "myapp", "t")
    ids: list[str] = []
    for i in range(5):
        changed = env.change_env(uow, "myapp", {"N": str(i)}, [], False, "t")
        assert changed.release is not None
        ids.append(changed.release.id)
    activate(uow, ids[1])

    first = releases.list_releases(uow, "myapp", 3, "")
    rest = releases.list_releases(uow, "myapp", 3, first.next_page_token)

    listed = [*first.items, *rest.items]
    assert [r.id for r in listed] == ids[::-1]
    assert [r.status for r in listed] == ["", "", "", "active", ""]
    assert all(r.env == {} for r in listed)
    assert rest.next_page_token == ""


async def test_writes_that_arrive_together_share_a_commit_and_each_stands_alone(
    uow: SqlUnitOfWork,
) -> None:
    """Group commit: the writes queued while one commits are written in one transaction, each
    in a savepoint of its own: a refused write undoes only itself, a later write sees an
    earlier one, and every caller is answered once the transaction is committed."""
    apps.create_app(uow, "myapp", "alice")
    executor = DbExecutor(workers=2)
    writes = GroupedWrites(uow, executor)
    commits: list[object] = []

    def committed(conn: object) -> None:
        commits.append(conn)

    event.listen(uow.engine, "commit", committed)
    try:
        results = await asyncio.gather(
            writes.run(apps.create_app, "other", "alice"),
            writes.run(apps.create_app, "myapp", "alice"),  # refused: it exists
            writes.run(env.change_env, "myapp", {"A": "1"}, [], False, "alice"),
            writes.run(env.change_env, "myapp", {"B": "2"}, [], False, "alice"),
            return_exceptions=True,
        )
    finally:
        event.remove(uow.engine, "commit", committed)
        writes.close()
        executor.shutdown()
    assert isinstance(results[1], AlreadyExists)
    assert not any(isinstance(r, Exception) for i, r in enumerate(results) if i != 1)
    assert apps.get_app(uow, "other").name == "other"
    assert env.get_env(uow, "myapp").env == {"A": "1", "B": "2"}  # the second saw the first
    assert len(commits) < 4  # four writes, fewer commits
