"""Fixtures shared by every suite.

Layout, by what a test needs (``make test-unit`` runs the first, ``make test`` all three):

* ``tests/unit``: nothing outside the test's process but SQLite files, loopback gRPC and the
  ``relman`` command (no PostgreSQL, no service processes, no Docker, no cluster);
* ``tests/integration``: PostgreSQL (``db_url``, ``pg_url``), the services as real processes,
  the Node.js contract client;
* ``tests/e2e``: the local Kubernetes control plane, a private dockerd and registry, the CLI
  driving the services as real processes.

``tests/support`` holds what more than one folder uses; ``tests/`` is on ``sys.path``
(``pythonpath`` in pyproject.toml), so tests import it as ``support.<module>``.

Databases: ``db_url`` runs a test once on a fresh SQLite file and once on a fresh PostgreSQL
database (created on the local server, dropped afterwards). PostgreSQL is not optional: when
it cannot be reached the test fails and says how to start it.

Containers: ``support/containers.py`` (loaded below) provides ``docker_daemon``, ``registry``
and ``base_image``; ``support/k8s_cluster.py`` provides ``kube_cluster``. Nothing starts unless
a test asks for it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

pytest_plugins = ["support.containers", "support.k8s_cluster", "support.real_node"]

PG_ADMIN_URL = os.environ.get("RELMAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_START_HINT = (
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)


def _pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({err}); {PG_START_HINT}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL of a new, empty PostgreSQL database that is dropped after the test."""
    name = "relman_t_" + secrets.token_hex(6)
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'relman.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relman.db'}"
    else:
        yield request.getfixturevalue("pg_url")
