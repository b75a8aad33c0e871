"""Fixtures of the tests against the real local control plane: the ``kubernetes`` backend's,
and the control plane's own (test_controlplane.py).

``kube_cluster`` (the tests/support/k8s_cluster.py plugin) starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and the kubelet emulator once per test session (per
xdist worker: the backend's tests are all in the ``kube`` xdist group, so one worker runs them
on one control plane). It fails loudly when the control plane cannot start; nothing here is
ever skipped. ``stack`` (tests/support/deployer_stack.py) runs both services in the test's
process, for the Deployer on this backend.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from relman_deployer.backends.kubernetes import KubernetesBackend
from support.deployer_stack import stack
from support.k8s_cluster import KubeCluster

__all__ = ["stack"]


@pytest.fixture
def app_name() -> str:
    """A new app (so a new namespace) for every test: tests share one cluster."""
    return "k" + uuid.uuid4().hex[:10]


@pytest.fixture
async def backend(kube_cluster: KubeCluster) -> AsyncIterator[KubernetesBackend]:
    b = KubernetesBackend(kubeconfig=str(kube_cluster.kubeconfig), watch_timeout_seconds=10)
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def kube_api(kube_cluster: KubeCluster) -> Iterator[Any]:
    """A plain (sync) client for checking what the backend wrote."""
    api = kube_cluster.new_api_client()
    try:
        yield api
    finally:
        api.close()
