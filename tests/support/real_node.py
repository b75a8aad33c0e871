"""Pytest plugin: the local control plane with one REAL node (a kubelet 1.20.2 running pods on
a private dockerd), and the loopback registry that node pulls from.

Loaded for the whole suite by ``tests/conftest.py`` (``pytest_plugins``); importing it starts
nothing. A test asks for the session-scoped ``real_node`` fixture::

    pytestmark = pytest.mark.xdist_group("real-node")

    def test_something(real_node):
        api = real_node.new_api_client()

Put every test that uses it in the ``real-node`` xdist group: ``make test`` runs ``-n 2 --dist
loadgroup``, and the group keeps the node (~0.75 GB, ~20 s to start) to one worker.

Where Docker cannot run (not root, packages missing) the fixture skips with the reason, or
fails with ``RELMAN_CI`` set (``skip_or_fail``). The Kubernetes binaries come from
cluster/build.sh (a failed build fails loudly); a node that does not come up fails loudly.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from relman_cluster.cluster import LocalCluster
from relman_cluster.controlplane import ControlPlaneError
from relman_cluster.dockerd import ContainersUnavailable, DockerDaemon
from relman_cluster.node import NodeError, node_unavailable_reason
from support.containers import skip_or_fail
from support.k8s_cluster import _ensure_binaries


@dataclass(frozen=True)
class RealNodeCluster:
    """What a test needs of the running cluster (all of it under ``workdir``)."""

    kubeconfig: Path  # admin kubeconfig (token auth)
    registry: str  # 127.0.0.1:PORT, the registry the node pulls from (plain HTTP)
    docker_host: str  # unix://... of the node's own dockerd (build + push here)
    node_name: str
    workdir: Path
    settings: dict[str, str]  # KUBECONFIG, RELMAN_REGISTRY, DOCKER_HOST
    startup_seconds: float
    timings: dict[str, float]  # phase -> seconds
    base_image: str  # <registry>/relman/busybox:1 (static busybox, sh, httpd, ...)
    pod_network: ipaddress.IPv4Network  # the bridge this run made; pods get addresses here
    docker: DockerDaemon = field(repr=False)  # .docker(*args) runs the CLI on the node's dockerd
    cluster: LocalCluster = field(repr=False)

    def new_api_client(self) -> Any:
        """A kubernetes.client.ApiClient for this cluster (caller closes it)."""
        from kubernetes import config as k8s_config

        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def rss_bytes(self) -> int:
        """Resident memory of the control plane, the node and its containers."""
        return self.cluster.rss_bytes()


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeCluster]:
    reason = node_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    _ensure_binaries()
    workdir = tmp_path_factory.mktemp("real-node")
    cluster = LocalCluster(workdir, emulated=False, build=False)
    try:
        cluster.start(timeout=float(os.environ.get("RELMAN_TEST_REAL_NODE_START_TIMEOUT", "180")))
    except ContainersUnavailable as exc:
        cluster.stop()
        skip_or_fail(f"the node's dockerd or registry could not start here: {exc}")
    except (ControlPlaneError, NodeError, RuntimeError) as exc:
        cluster.stop()
        pytest.fail(
            f"the local cluster with a real node failed to start: {exc}\n(logs: {workdir})",
            pytrace=False,
        )
    node = cluster.node
    assert node is not None and node.docker is not None and node.base_image is not None
    try:
        yield RealNodeCluster(
            kubeconfig=cluster.kubeconfig,
            registry=cluster.settings["RELMAN_REGISTRY"],
            docker_host=cluster.settings["DOCKER_HOST"],
            node_name=node.name,
            workdir=workdir,
            settings=cluster.settings,
            startup_seconds=cluster.startup_seconds or 0.0,
            timings=dict(cluster.timings),
            base_image=node.base_image.ref,
            pod_network=node.docker.bridge.subnet,
            docker=node.docker,
            cluster=cluster,
        )
    finally:
        cluster.stop()
