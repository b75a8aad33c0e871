"""The contract, tried from another language: a Node.js gRPC client (``client.js``, built
only from the .proto files) against both services as real processes.

It proves what issue 10 asks of the contract: errors carry google.rpc details (ErrorInfo with
a stable reason, BadRequest field violations) that a non-Python client decodes; malformed and
unknown ids are answered the same way by both services; enums arrive as names; a promote
stream ends with the deployment's final state. Node and its packages: the machine's ``node``
and ``npm``, packages from ``package-lock.json`` (hashes pinned) installed once into a cache
outside the checkout. Without node the test skips, except in CI (``RELMAN_CI``), where a
missing node is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import google.rpc
import pytest
from support.helpers import ServiceProcess, free_port, read_token

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "relman" / "node"
# Status codes as numbers (what a Node client sees).
NOT_FOUND, INVALID_ARGUMENT = 5, 3


def node_modules() -> Path:
    """The contract client's packages, installed with ``npm ci`` from the lock file once per
    lock file version."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("RELMAN_CI"):
            pytest.fail("node and npm are required in CI (apt-get install nodejs npm)")
        pytest.skip("node/npm not installed: the Node.js contract client cannot run")
    lock = (HERE / "package-lock.json").read_bytes()
    target = CACHE / hashlib.sha256(lock).hexdigest()[:16]
    if not (target / "node_modules" / "@grpc" / "grpc-js").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, target / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=target,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return target / "node_modules"


@pytest.fixture
def services(tmp_path: Path) -> Any:
    release_addr = f"127.0.0.1:{free_port()}"
    deployer_addr = f"127.0.0.1:{free_port()}"
    release = ServiceProcess(
        "relman_release",
        ["--addr", release_addr, "--data-dir", str(tmp_path / "release")],
        env={"RELMAN_AUTH": "on"},
        log_path=tmp_path / "release.log",
    ).start(release_addr)
    deployer = ServiceProcess(
        "relman_deployer",
        [
            "--addr",
            deployer_addr,
            "--release-addr",
            release_addr,
            "--data-dir",
            str(tmp_path / "deployer"),
            "--token-file",
            str(tmp_path / "release" / "deployer.token"),
            "--sim-pod-delay",
            "0",
        ],
        env={"RELMAN_AUTH": "on"},
        log_path=tmp_path / "deployer.log",
    ).start(deployer_addr)
    try:
        yield release_addr, deployer_addr, read_token(tmp_path / "release")
    finally:
        deployer.stop()
        release.stop()


def error_info(result: dict[str, Any]) -> tuple[str, str]:
    """(reason, field) from the google.rpc.Status the client decoded: the field from the
    ErrorInfo's metadata, and for invalid input also from a BadRequest (they must agree)."""
    reason = field = ""
    violations: list[str] = []
    for detail in (result.get("status") or {}).get("details", []):
        if detail["type"] == "google.rpc.ErrorInfo":
            assert detail["domain"] == "relman.dev"
            reason = detail["reason"]
            field = (detail.get("metadata") or {}).get("field", "")
        if detail["type"] == "google.rpc.BadRequest":
            violations = [v["field"] for v in detail["field_violations"]]
    if result["code"] == INVALID_ARGUMENT:
        assert violations == [field], (violations, field)
    else:
        assert not violations, "BadRequest is for invalid input only"
    return reason, field


def test_a_node_client_reads_the_contract(services: tuple[str, str, str]) -> None:
    modules = node_modules()
    release_addr, deployer_addr, token = services
    googleapis = Path(next(iter(google.rpc.__path__))).parent.parent
    done = subprocess.run(
        [
            "node",
            str(HERE / "client.js"),
            release_addr,
            deployer_addr,
            token,
            str(REPO / "protos"),
            str(googleapis),
        ],
        env={**os.environ, "NODE_PATH": str(modules)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)

    assert out["createApp"]["ok"], out["createApp"]
    assert out["createApp"]["resp"]["name"] == "node-app"

    missing = out["missingApp"]
    assert (missing["code"], missing["message"]) == (NOT_FOUND, "app not found: nope")
    assert error_info(missing) == ("APP_NOT_FOUND", "name")

    bad = out["badName"]
    assert bad["code"] == INVALID_ARGUMENT
    assert error_info(bad) == ("INVALID_NAME", "name")

    assert out["importBuild"]["ok"], out["importBuild"]
    assert out["importBuild"]["resp"]["build"]["status"] == "BUILD_STATUS_COMPLETE"

    # Both services answer a malformed id and an unknown one the same way.
    for malformed, field in ((out["malformedRelease"], "id"), (out["malformedDeployment"], "id")):
        assert malformed["code"] == INVALID_ARGUMENT, malformed
        assert error_info(malformed) == ("INVALID_ID", field)
        assert "followed by 10 capital letters" in malformed["message"]
    assert error_info(out["unknownRelease"])[0] == "RELEASE_NOT_FOUND"
    assert error_info(out["unknownDeployment"])[0] == "DEPLOYMENT_NOT_FOUND"
    assert out["unknownRelease"]["code"] == out["unknownDeployment"]["code"] == NOT_FOUND

    # A promote streams the deployment, its events (seq 1..N), then the final deployment.
    promote = out["promote"]
    assert promote["ok"], promote
    seen = promote["seen"]
    assert seen[0]["update"] == "deployment" and seen[-1]["update"] == "deployment"
    seqs = [int(u["event"]["seq"]) for u in seen if u["update"] == "event"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seen[-1]["deployment"]["outcome"] == "OUTCOME_SUCCEEDED"
    assert seen[-1]["deployment"]["kind"] == "DEPLOYMENT_KIND_PROMOTE"

    releases = out["releases"]["resp"]["releases"]
    assert [r["status"] for r in releases] == ["RELEASE_STATUS_ACTIVE"]
    assert out["deployments"]["resp"]["deployments"][0]["outcome"] == "OUTCOME_SUCCEEDED"
