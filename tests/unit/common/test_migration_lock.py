"""Migrations on a SQLite file that another process's service is writing to.

The Release service and a Deployer may share one SQLite file (tests do); the one that starts
second migrates while the first is already writing (the sweeper, the webhook worker). A
migration that began as a reader used to fail with "database is locked" when its snapshot
went stale under another writer; it now takes the write lock up front and waits its turn.
"""

from __future__ import annotations

import threading
from pathlib import Path

from relman_common.db import make_engine, sqlite_url, writer
from relman_deployer.store.base import migrate
from sqlalchemy import text

HOLD_SECONDS = 0.5  # how long the other writer keeps the lock: a fault, not a wait


def test_a_migration_waits_for_another_writer_instead_of_failing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shared.db")
    other = writer(make_engine(url))
    with other.begin() as conn:
        conn.execute(text("CREATE TABLE other_service (n INTEGER)"))
    holding = threading.Event()
    release = threading.Event()

    def hold_the_write_lock() -> None:
        with other.begin() as conn:
            conn.execute(text("INSERT INTO other_service VALUES (1)"))
            holding.set()
            release.wait(HOLD_SECONDS)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert holding.wait(10)
    engine = make_engine(url)
    try:
        migrate(engine)  # blocks until the holder commits, then migrates
    finally:
        release.set()
        holder.join()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM other_service")).scalar() == 1
        version = conn.execute(text("SELECT version_num FROM deployer_alembic_version"))
        assert version.scalar()
    engine.dispose()
    other.dispose()
