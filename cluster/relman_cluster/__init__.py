"""A real local Kubernetes 1.20.2 control plane (etcd + kube-apiserver +
kube-controller-manager + kube-scheduler, built from Debian's kubernetes source) with either
one real node (a kubelet on a private dockerd, with a loopback registry) or a kubelet emulator.

Typical use::

    from relman_cluster import LocalCluster

    with LocalCluster(workdir, emulated=False) as cluster:   # a real node
        print(cluster.settings)  # KUBECONFIG, RELMAN_REGISTRY, DOCKER_HOST

    with LocalCluster(workdir, nodes=2) as cluster:          # emulated nodes
        print(cluster.kubeconfig)
"""

from __future__ import annotations

from relman_cluster.build import BuildError, default_cache_dir, ensure_binaries
from relman_cluster.cluster import LocalCluster
from relman_cluster.controlplane import ControlPlane, ControlPlaneError
from relman_cluster.dockerd import ContainersUnavailable
from relman_cluster.kubelet import KubeletEmulator
from relman_cluster.node import NodeError, RealNode, cleanup_node_workdir, node_unavailable_reason

__all__ = [
    "BuildError",
    "ContainersUnavailable",
    "ControlPlane",
    "ControlPlaneError",
    "KubeletEmulator",
    "LocalCluster",
    "NodeError",
    "RealNode",
    "cleanup_node_workdir",
    "default_cache_dir",
    "ensure_binaries",
    "node_unavailable_reason",
]
