"""The pieces of the service images that can be checked without Docker: the runtime part of
the lock that services/Dockerfile installs, the build context .dockerignore leaves, and the
health check command of the images' HEALTHCHECK (against a real gRPC health service)."""

from __future__ import annotations

import doctest
import importlib.util
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from relman_common import healthcheck
from relman_common.dockerignore import IgnoreMatcher, read_patterns

REPO = Path(__file__).resolve().parents[2]


def _lock_subset() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_subset", REPO / "scripts/lock_subset.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_images_install_the_runtime_pins_and_no_dev_tools() -> None:
    out = subprocess.run(
        [sys.executable, "scripts/lock_subset.py", "requirements.lock", "pyproject.toml"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", out, re.MULTILINE))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    norm = _lock_subset().requirement_name
    for requirement in [*pyproject["project"]["dependencies"], "setuptools", "wheel"]:
        assert norm(requirement) in pins, requirement
    for requirement in pyproject["project"]["optional-dependencies"]["dev"]:
        assert norm(requirement) not in pins, requirement
    assert {"pytest", "ruff", "mypy", "hypothesis", "execnet"}.isdisjoint(pins)
    # transitive runtime pins come along (grpcio-status needs googleapis-common-protos, ...)
    assert {"psycopg-binary", "greenlet", "cffi", "urllib3"} <= set(pins)
    # every block keeps its hashes, as `pip install --require-hashes` needs
    blocks = re.split(r"\n(?=[a-z])", out.strip())
    assert len(blocks) == len(pins)
    assert all("--hash=sha256:" in block for block in blocks)


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    matcher = IgnoreMatcher(read_patterns(REPO))
    for kept in (
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "scripts/lock_subset.py",
        "services/release/relman_release/__main__.py",
        "services/common/relman_common/healthcheck.py",
    ):
        assert not matcher.excludes(kept), kept
    for left_out in (
        ".venv/bin/python",
        ".git/HEAD",
        ".relman/admin.token",
        "tests/conftest.py",
        "bench/__main__.py",
        "cluster/build.sh",
        ".mypy_cache/x",
        "services/common/relman_common/__pycache__/x.pyc",
    ):
        assert matcher.excludes(left_out), left_out


def test_the_health_check_doctests() -> None:
    assert doctest.testmod(healthcheck).failed == 0


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(0)


def test_the_health_check_says_serving_or_why_not(
    health_server: tuple[str, health.HealthServicer], monkeypatch: pytest.MonkeyPatch
) -> None:
    addr, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert healthcheck.check(addr) is None
    monkeypatch.setenv("RELMAN_RELEASE_ADDR", "0.0.0.0:" + addr.rsplit(":", 1)[1])
    assert healthcheck.main(["release"]) == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert healthcheck.check(addr) == f"{addr}: NOT_SERVING"
    assert healthcheck.main(["release"]) == 1
    servicer.enter_graceful_shutdown()
    assert healthcheck.main([]) == 2


def test_the_health_check_of_a_closed_port_is_unavailable() -> None:
    from support.helpers import free_port

    why = healthcheck.check(f"127.0.0.1:{free_port()}", timeout=2)
    assert why is not None and "UNAVAILABLE" in why
