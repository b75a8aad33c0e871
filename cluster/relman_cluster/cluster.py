"""ControlPlane + a node (a real kubelet, or the kubelet emulator) as one unit."""

from __future__ import annotations

import os
import shlex
import threading
import time
from pathlib import Path
from types import TracebackType

from relman_cluster.build import ensure_binaries
from relman_cluster.controlplane import ControlPlane
from relman_cluster.kubelet import KubeletEmulator
from relman_cluster.node import RealNode, rss_bytes


class LocalCluster:
    """A local control plane with either one real node (``emulated=False``: a kubelet on a
    private dockerd, with a loopback registry; see :mod:`relman_cluster.node`) or ``nodes``
    emulated kubelets (``emulated=True``, the default: no containers run).

    Attributes after start(): ``kubeconfig`` (Path), ``server``, ``token``, ``control_plane``,
    ``kubelet`` (emulated) or ``node`` (real), ``settings`` (what a relman needs, as
    environment variables), ``timings`` (phase -> seconds) and ``startup_seconds``.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        emulated: bool = True,
        nodes: int = 1,
        pod_delay: float = 0.2,
        crash_interval: float = 1.0,
        unready_interval: float = 1.0,
        build: bool = True,
        die_with_parent: bool = True,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.emulated = emulated
        self.nodes = nodes if emulated else 1
        self.pod_delay = pod_delay
        self.crash_interval = crash_interval
        self.unready_interval = unready_interval
        self.build = build
        self.die_with_parent = die_with_parent
        self.control_plane: ControlPlane | None = None
        self.kubelet: KubeletEmulator | None = None
        self.node: RealNode | None = None
        self.startup_seconds: float | None = None
        self.timings: dict[str, float] = {}

    @property
    def node_workdir(self) -> Path:
        """Where the real node keeps its state (cleaned up with the node)."""
        return self.workdir / "node"

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

    @property
    def node_names(self) -> list[str]:
        if self.node is not None:
            return [self.node.name]
        if self.kubelet is not None:
            return list(self.kubelet.node_names)
        return []

    @property
    def settings(self) -> dict[str, str]:
        """What a relman (or kubectl/docker) needs to use this cluster, as environment
        variables: ``KUBECONFIG``; with a real node also ``RELMAN_REGISTRY`` (host:port of the
        registry the node pulls from) and ``DOCKER_HOST`` (the node's dockerd)."""
        out = {"KUBECONFIG": str(self.kubeconfig)}
        if self.node is not None and self.node.registry is not None:
            out["RELMAN_REGISTRY"] = self.node.registry.addr
        if self.node is not None and self.node.docker is not None:
            out["DOCKER_HOST"] = self.node.docker.host
        return out

    def write_env_file(self, path: Path | None = None) -> Path:
        """``settings`` as ``export NAME=value`` lines (for ``source``); returns the path."""
        path = path or self.workdir / "env"
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.settings.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def rss_bytes(self) -> int:
        """Resident memory of every process of the cluster (control plane, node, containers)."""
        pids = self.control_plane.pids() if self.control_plane else []
        if self.node is not None:
            pids += self.node.pids()
        return rss_bytes(pids)

    def start(self, timeout: float = 120.0) -> None:
        t0 = time.monotonic()
        bin_dir = ensure_binaries(build=self.build)
        self.timings["binaries"] = time.monotonic() - t0
        try:
            if self.emulated:
                self._start_emulated(bin_dir, t0 + timeout)
            else:
                self._start_real(bin_dir, t0 + timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0

    def _start_emulated(self, bin_dir: Path, deadline: float) -> None:
        cp = ControlPlane(self.workdir, bin_dir=bin_dir, die_with_parent=self.die_with_parent)
        self.control_plane = cp
        cp.start(timeout=deadline - time.monotonic())
        self.timings["control plane"] = cp.startup_seconds or 0.0
        t0 = time.monotonic()
        kubelet = KubeletEmulator(
            cp.kubeconfig,
            nodes=self.nodes,
            pod_delay=self.pod_delay,
            crash_interval=self.crash_interval,
            unready_interval=self.unready_interval,
        )
        kubelet.start(timeout=max(10.0, deadline - time.monotonic()))
        self.kubelet = kubelet
        self.timings["emulated nodes Ready"] = time.monotonic() - t0

    def _start_real(self, bin_dir: Path, deadline: float) -> None:
        node = RealNode(self.node_workdir, bin_dir=bin_dir, die_with_parent=self.die_with_parent)
        self.node = node
        node.start_registry()  # main thread: the registry dies with the thread that starts it
        # dockerd and the images are made while the control plane starts.
        errors: list[BaseException] = []

        def prepare() -> None:
            try:
                node.prepare_runtime()
            except BaseException as err:  # re-raised in the main thread
                errors.append(err)

        worker = threading.Thread(target=prepare, name="relman-node-prepare", daemon=True)
        worker.start()
        cp = ControlPlane(
            self.workdir,
            bin_dir=bin_dir,
            die_with_parent=self.die_with_parent,
            authorization_mode="Node,RBAC",  # the kubelet's own identity, system:node:NAME
        )
        self.control_plane = cp
        try:
            cp.start(timeout=deadline - time.monotonic())
            self.timings["control plane"] = cp.startup_seconds or 0.0
        finally:
            worker.join()
        if errors:
            raise errors[0]
        self.timings.update(node.timings)
        node.join(
            server=cp.server,
            ca_cert=cp.ca_file,
            ca_key=cp.ca_key_file,
            admin_token=cp.token,
            timeout=max(30.0, deadline - time.monotonic()),
        )
        self.timings["kubelet to node Ready"] = node.timings["kubelet to node Ready"]

    def check_alive(self) -> None:
        """Raise (ControlPlaneError / NodeError) if a component has exited."""
        if self.control_plane is not None:
            self.control_plane.check_alive()
        if self.node is not None:
            self.node.check_alive()

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None
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
