"""A real local Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager +
kube-scheduler, built from Debian's kubernetes 1.20.2 source) plus a kubelet emulator.

Typical use::

    from relman_cluster import ensure_binaries, LocalCluster

    with LocalCluster(workdir, nodes=2) as cluster:
        print(cluster.kubeconfig)
"""

from __future__ import annotations

from relman_cluster.build import BuildError, default_cache_dir, ensure_binaries
from relman_cluster.cluster import LocalCluster
from relman_cluster.controlplane import ControlPlane, ControlPlaneError
from relman_cluster.kubelet import KubeletEmulator

__all__ = [
    "BuildError",
    "ControlPlane",
    "ControlPlaneError",
    "KubeletEmulator",
    "LocalCluster",
    "default_cache_dir",
    "ensure_binaries",
]
