"""Fresh PostgreSQL databases for the bench, created on the local server and dropped after."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_ADMIN_URL = os.environ.get("RELMAN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


def pg_available() -> str:
    """Empty when PostgreSQL answers, else why it does not."""
    try:
        with _admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as err:
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {err}".strip()
    return ""


@contextmanager
def fresh_database(tag: str = "") -> Iterator[str]:
    """Create ``relman_bench_<random>``, yield its URL, drop it (even on failure)."""
    name = "relman_bench_" + (f"{tag}_" if tag else "") + secrets.token_hex(5)
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
