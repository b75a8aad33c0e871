"""Store properties that are not visible through the API: indexes and migrations."""

from __future__ import annotations

from typing import Any

from relman_release.app import apps, env, releases
from relman_release.store.uow import open_store
from sqlalchemy import event, inspect, text

from .conftest import new_box


def test_release_listing_reads_the_app_seq_index_not_the_whole_table(sqlite_url: str) -> None:
    """Keyset paging on (app_id, seq): any page is an index range scan, never a table scan or
    an OFFSET, so listing stays fast at 100k releases per app."""
    uow = open_store(sqlite_url, new_box())
    apps.create_app(uow, "myapp", "t")
    for i in range(3):
        env.change_env(uow, "myapp", {"N": str(i)}, [], False, "t")
    first = releases.list_releases(uow, "myapp", 1, "")

    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM releases" in statement and "ORDER BY" in statement:
            statements.append((statement, params))

    event.listen(uow.engine, "before_cursor_execute", capture)
    releases.list_releases(uow, "myapp", 1, first.next_page_token)
    event.remove(uow.engine, "before_cursor_execute", capture)

    assert len(statements) == 1
    statement, params = statements[0]
    # SQLAlchemy's SQLite dialect always writes "LIMIT ? OFFSET ?"; the offset must be 0 and the
    # page must start from the cursor instead.
    assert "releases.seq < ?" in statement
    if "OFFSET" in statement:
        assert params[-1] == 0
    with uow.engine.connect() as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
        )
    assert "ix_releases_app_seq" in plan, plan
    assert "SCAN releases" not in plan.replace("USING INDEX", ""), plan
    uow.engine.dispose()


def test_migrations_create_the_tables_once_and_are_safe_to_rerun(db_url: str) -> None:
    box = new_box()
    uow = open_store(db_url, box)
    uow.engine.dispose()
    again = open_store(db_url, box)  # a restart applies nothing new
    names = set(inspect(again.engine).get_table_names())
    assert {"apps", "builds", "releases", "api_tokens", "release_alembic_version"} <= names
    assert not names & {"deployments", "deployment_events", "deploy_leases"}
    with again.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM release_alembic_version")).all()
    assert len(versions) == 1
    indexes = {ix["name"] for ix in inspect(again.engine).get_indexes("releases")}
    assert "ix_releases_app_seq" in indexes
    again.engine.dispose()
