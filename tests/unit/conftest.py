"""Unit tests need nothing outside the test's process but SQLite files, loopback gRPC and the
``relman`` command: ``make test-unit`` runs them without PostgreSQL, Docker or a cluster.

A unit test that asks for one of those (a fixture below) is refused at collection, and one that
starts a service as a process fails: it belongs in tests/integration or tests/e2e.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.helpers import ServiceProcess

UNIT = Path(__file__).parent
NEEDS = {
    "db_url": "PostgreSQL (db_url runs each test on both databases)",
    "pg_url": "PostgreSQL",
    "docker_daemon": "a private dockerd",
    "registry": "a registry",
    "base_image": "a private dockerd and a registry",
    "kube_cluster": "the Kubernetes control plane",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wrong = [
        f"{item.nodeid} needs {NEEDS[name]} ({name})"
        for item in items
        if UNIT in item.path.parents
        for name in NEEDS
        if name in getattr(item, "fixturenames", ())
    ]
    if wrong:
        raise pytest.UsageError(
            "unit tests need no database server, Docker or cluster; move these to "
            "tests/integration or tests/e2e:\n  " + "\n  ".join(wrong)
        )


@pytest.fixture(autouse=True)
def _no_service_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ServiceProcess, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(
            f"a unit test started {self.module} as a process: it belongs in tests/integration"
        )

    monkeypatch.setattr(ServiceProcess, "start", refuse)
