"""ControlPlane + KubeletEmulator as one unit."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

from relman_cluster.build import ensure_binaries
from relman_cluster.controlplane import ControlPlane
from relman_cluster.kubelet import KubeletEmulator


class LocalCluster:
    """A local control plane with ``nodes`` emulated kubelets.

    Attributes after start(): ``kubeconfig`` (Path), ``server``, ``token``,
    ``control_plane`` and ``kubelet``.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        nodes: int = 1,
        pod_delay: float = 0.2,
        crash_interval: float = 1.0,
        unready_interval: float = 1.0,
        build: bool = True,
        die_with_parent: bool = True,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.nodes = nodes
        self.pod_delay = pod_delay
        self.crash_interval = crash_interval
        self.unready_interval = unready_interval
        self.build = build
        self.die_with_parent = die_with_parent
        self.control_plane: ControlPlane | None = None
        self.kubelet: KubeletEmulator | None = None
        self.startup_seconds: float | None = None

    @property
    def kubeconfig(self) -> Path:
        if self.control_plane is None:
            raise RuntimeError("cluster not started")
        return self.control_plane.kubeconfig

    @property
    def server(self) -> str:
        if self.control_plane is None:
            raise RuntimeError("cluster not started")
        return self.control_plane.server

    @property
    def token(self) -> str:
        if self.control_plane is None:
            raise RuntimeError("cluster not started")
        return self.control_plane.token

    def start(self, timeout: float = 120.0) -> None:
        t0 = time.monotonic()
        bin_dir = ensure_binaries(build=self.build)
        cp = ControlPlane(self.workdir, bin_dir=bin_dir, die_with_parent=self.die_with_parent)
        cp.start(timeout=timeout)
        self.control_plane = cp
        try:
            kubelet = KubeletEmulator(
                cp.kubeconfig,
                nodes=self.nodes,
                pod_delay=self.pod_delay,
                crash_interval=self.crash_interval,
                unready_interval=self.unready_interval,
            )
            kubelet.start(timeout=max(10.0, timeout - (time.monotonic() - t0)))
            self.kubelet = kubelet
        except BaseException:
            cp.stop()
            self.control_plane = None
            raise
        self.startup_seconds = time.monotonic() - t0

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
            self.kubelet = None
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
