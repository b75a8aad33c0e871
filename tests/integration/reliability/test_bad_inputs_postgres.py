"""The bad-input suite of tests/unit/reliability/test_bad_inputs.py on PostgreSQL (issue 14:
a NUL byte in an id answered INTERNAL there, where SQLite stored it): the same generated
calls over every RPC, the same NUL bytes and 100 KB values field by field, the same checks
(only documented codes, short messages, nothing written by a refused call).

The tests are the unit suite's own functions, collected here again: their ``fuzz`` fixture is
this module's, which runs both services on a fresh PostgreSQL database.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from unit.reliability.test_bad_inputs import (
    Fuzz,
    fuzzing,
    test_generated_deployer_calls_get_only_documented_codes_and_refusals_write_nothing,
    test_generated_release_service_calls_get_only_documented_codes_and_refusals_write_nothing,
    test_generated_token_service_calls_get_only_documented_codes_and_refusals_write_nothing,
    test_nul_bytes_and_100_kb_values_in_any_field_are_refused_as_bad_input_in_few_words,
)

__all__ = [
    "test_generated_deployer_calls_get_only_documented_codes_and_refusals_write_nothing",
    "test_generated_release_service_calls_get_only_documented_codes_and_refusals_write_nothing",
    "test_generated_token_service_calls_get_only_documented_codes_and_refusals_write_nothing",
    "test_nul_bytes_and_100_kb_values_in_any_field_are_refused_as_bad_input_in_few_words",
]

pytestmark = pytest.mark.xdist_group("reliability-fuzz-postgres")

# The server tests/conftest.py's pg_url uses (that fixture makes one database per test).
PG_ADMIN_URL = os.environ.get("RELMAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    """Both services on a PostgreSQL database of their own for the whole module."""
    name = "relman_t_" + secrets.token_hex(6)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        with fuzzing(url, tmp_path_factory.mktemp("fuzz-pg") / "data") as f:
            yield f
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
