"""Fixtures for the ``kubernetes`` backend's tests, against the real local control plane.

``kube_cluster`` (tests/k8s_cluster.py) starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the kubelet emulator once per test session (per xdist worker: these tests
are all in the ``kube`` xdist group, so one worker runs them on one control plane). It fails
loudly when the control plane cannot start; nothing here is ever skipped.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

_REPO = Path(__file__).resolve().parents[3]
for _path in (str(_REPO), str(_REPO / "cluster")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from relman_deployer.backends.kubernetes import KubernetesBackend  # noqa: E402

from tests.k8s_cluster import KubeCluster, kube_cluster  # noqa: E402, F401


@pytest.fixture
def app_name() -> str:
    """A new app (so a new namespace) for every test: tests share one cluster."""
    return "k" + uuid.uuid4().hex[:10]


@pytest.fixture
async def backend(kube_cluster: KubeCluster) -> AsyncIterator[KubernetesBackend]:  # noqa: F811
    b = KubernetesBackend(kubeconfig=str(kube_cluster.kubeconfig), watch_timeout_seconds=10)
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def kube_api(kube_cluster: KubeCluster) -> Iterator[Any]:  # noqa: F811
    """A plain (sync) client for checking what the backend wrote."""
    api = kube_cluster.new_api_client()
    try:
        yield api
    finally:
        api.close()
