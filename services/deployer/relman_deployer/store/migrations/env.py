"""Alembic environment of the Deployer's tables (run through relman_common.db.upgrade)."""

from relman_common.db import run_migrations_online
from relman_deployer.store.tables import metadata

run_migrations_online(metadata)
