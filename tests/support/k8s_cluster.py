"""Pytest plugin: a real local Kubernetes control plane with emulated kubelets.

Loaded for the whole suite by ``tests/conftest.py`` (``pytest_plugins``); importing it starts
nothing. A test that needs the cluster requests the session-scoped ``kube_cluster`` fixture::

    def test_something(kube_cluster):
        api = kubernetes.config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))

The binaries come from cluster/build.sh (a no-op once cached). A failed build fails the
test loudly; it is never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = Path(os.environ.get("RELMAN_KUBE_BUILD_SCRIPT", REPO_ROOT / "cluster" / "build.sh"))

try:
    import relman_cluster  # noqa: F401
except ImportError:  # not installed in the venv: use the source checkout
    sys.path.insert(0, str(REPO_ROOT / "cluster"))

from relman_cluster.cluster import LocalCluster  # noqa: E402
from relman_cluster.controlplane import ControlPlaneError  # noqa: E402


@dataclass(frozen=True)
class KubeCluster:
    kubeconfig: Path
    server: str
    token: str
    workdir: Path
    nodes: tuple[str, ...]
    startup_seconds: float

    def new_api_client(self) -> Any:
        """A kubernetes.client.ApiClient for this cluster (caller closes it)."""
        from kubernetes import config as k8s_config

        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))


def _ensure_binaries() -> None:
    timeout = float(os.environ.get("RELMAN_KUBE_BUILD_TIMEOUT", "3600"))
    try:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{BUILD_SCRIPT} did not finish within {timeout:.0f}s", pytrace=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-60:])
        pytest.fail(
            f"building the Kubernetes control plane failed ({BUILD_SCRIPT}, exit "
            f"{proc.returncode}):\n{tail}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    _ensure_binaries()
    workdir = tmp_path_factory.mktemp("kube-cluster")
    nodes = int(os.environ.get("RELMAN_TEST_KUBE_NODES", "2"))
    pod_delay = float(os.environ.get("RELMAN_TEST_POD_DELAY", "0.2"))
    cluster = LocalCluster(workdir, nodes=nodes, pod_delay=pod_delay, build=False)
    try:
        cluster.start(timeout=float(os.environ.get("RELMAN_TEST_KUBE_START_TIMEOUT", "120")))
    except (ControlPlaneError, RuntimeError) as exc:
        cluster.stop()
        pytest.fail(
            f"local Kubernetes control plane failed to start: {exc}\n(logs: {workdir}/logs)",
            pytrace=False,
        )
    assert cluster.kubelet is not None
    try:
        yield KubeCluster(
            kubeconfig=cluster.kubeconfig,
            server=cluster.server,
            token=cluster.token,
            workdir=workdir,
            nodes=tuple(cluster.kubelet.node_names),
            startup_seconds=cluster.startup_seconds or 0.0,
        )
    finally:
        cluster.stop()
