"""Alembic environment of the Release service (run through relman_common.db.upgrade)."""

from relman_common.db import run_migrations_online

from relman_release.store.tables import Base

run_migrations_online(Base.metadata)
