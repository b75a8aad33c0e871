"""A real Kubernetes node: kubelet 1.20.2 (dockershim) on a private dockerd, with a loopback
registry it pulls from.

Everything lives under one work directory (``<workdir>``; the local cluster uses
``<cluster workdir>/node``) or is put back when the node stops:

* ``registry/``  Debian's ``docker-registry`` on ``127.0.0.1:<free port>`` (a loopback
  registry is insecure-by-default for dockerd: plain HTTP, no configuration);
* ``docker/``    a private dockerd + containerd (:mod:`relman_cluster.dockerd`) on a bridge of
  its own (``--iptables=false``: it writes no iptables rule), cgroupfs driver, and as its
  default runtime ``bin/oom-clamp-runc``: runc, after raising a negative
  ``process.oomScoreAdj`` in the bundle's ``config.json`` to 0 (the kubelet asks for -998 for
  sandboxes; lowering it needs CAP_SYS_RESOURCE, which a VM or container may lack, and runc
  then fails with ``can't get final child's PID from pipe: EOF``);
* ``pause/``     the pod sandbox image, ``pause.c`` from the Kubernetes source (this package
  carries a copy) built static with gcc and imported FROM scratch as
  ``relman-local/pause:1.20.2`` (never pulled);
* ``kubelet/``   the kubelet's root dir (it bind-mounts it onto itself), its certificates
  (client ``CN=system:node:<name>, O=system:nodes`` signed by the cluster CA; it makes its own
  serving certificate), its kubeconfig and config file. Pods get addresses on dockerd's bridge
  (``--network-plugin=`` with no plugin); the node's InternalIP is the bridge's gateway
  address, where the kubelet listens (port 10250), so two nodes never collide on a port;
* cgroups: the pods' cgroups sit under ``/relman-<hash of workdir>`` (``cgroupRoot``) in every
  cgroup hierarchy, removed when the node stops;
* ``/var/log/pods`` and ``/var/log/containers``: the kubelet writes its pods' log links there
  (no flag moves them in 1.20); this node's entries are removed when it stops;
* ``net.bridge.bridge-nf-call-iptables``: the kubelet sets it to 1; the value it had is put back.

The kubelet writes no iptables rule (``makeIPTablesUtilChains: false``); there is no
kube-proxy (Services get no ClusterIP routing) and no cluster DNS server (``clusterDNS`` is
the bridge gateway, where nothing answers, so pods get no ``MissingClusterDNS`` warnings).

When the owner dies however it dies, a guardian process (started first) waits for the dockerd
guardian and then runs :func:`cleanup_node_workdir`; the control plane and the kubelet get
SIGTERM from the kernel (a parent-death signal). A start after a crash that took the guardians
too (everything killed with SIGKILL) begins with :func:`cleanup_node_workdir`,
which finds what the last run left from the state files under the work directory: processes
(by pid, checked against their command line), containers (by cgroup), mounts, the bridge,
cgroups and log links.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from relman_cluster import dockerd
from relman_cluster.controlplane import issue_client_cert
from relman_cluster.dockerd import (
    BaseImage,
    ContainersUnavailable,
    DockerDaemon,
    Registry,
    build_base_image,
    cleanup_docker_workdir,
    start_docker_daemon,
    start_registry,
    stop_docker_daemon,
    stop_registry,
)

log = logging.getLogger("relman_cluster.node")

KUBE_VERSION = "1.20.2"
NODE_NAME = "relman-node"
PAUSE_IMAGE = f"relman-local/pause:{KUBE_VERSION}"
BASE_REPOSITORY = "relman/busybox"
RUNTIME_NAME = "oom-clamp-runc"
KUBELET_PORT = 10250
PAUSE_SOURCE = Path(__file__).resolve().parent / "pause.c"
BRIDGE_NF_SYSCTL = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
CGROUP_FS_TYPES = ("cgroup", "cgroup2")

OOM_CLAMP_RUNC = '''#!{python} -I
"""runc, after raising a negative process.oomScoreAdj to 0 in the OCI spec it is given.

Written by relman_cluster.node. Lowering oom_score_adj needs CAP_SYS_RESOURCE; without it runc
fails to start the container. The kubelet asks for -998 (sandboxes) and -997 (Guaranteed pods).
"""
import json
import os
import sys

RUNC = {runc!r}


def clamp(path):
    try:
        with open(path) as fh:
            spec = json.load(fh)
    except (OSError, ValueError):
        return
    process = spec.get("process", spec)  # config.json holds a "process"; exec's file is one
    if isinstance(process, dict) and process.get("oomScoreAdj", 0) < 0:
        process["oomScoreAdj"] = 0
        with open(path + ".clamp", "w") as fh:
            json.dump(spec, fh)
        os.replace(path + ".clamp", path)


args = sys.argv[1:]
for i, arg in enumerate(args):
    if arg in ("--bundle", "-b") and i + 1 < len(args):
        clamp(os.path.join(args[i + 1], "config.json"))
    elif arg.startswith("--bundle="):
        clamp(os.path.join(arg.split("=", 1)[1], "config.json"))
    elif arg in ("--process", "-p") and i + 1 < len(args) and "exec" in args[:i]:
        clamp(args[i + 1])
os.execv(RUNC, [RUNC, *args])
'''


# The guardian's program: this package from where it is (installed or a source checkout).
_GUARD_MAIN = (
    f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
    "from pathlib import Path; from relman_cluster.node import _guard; _guard(Path(sys.argv[2]))"
)


class NodeError(RuntimeError):
    """The node could not be set up or did not become Ready (the reason says why)."""


def node_unavailable_reason() -> str | None:
    """Why a real node cannot run here (besides Docker's own needs), or None."""
    reason = dockerd.containers_unavailable_reason()
    missing = [tool for tool in ("gcc",) if dockerd._which(tool) is None]
    if missing:
        extra = "missing for the pause image: gcc, libc6-dev (static libc)"
        reason = f"{reason}; {extra}" if reason else extra
    return reason


def cgroup_root_for(workdir: Path) -> str:
    """The pods' cgroup root for this work directory: ``/relman-<12 hex>``."""
    return "/relman-" + hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:12]


def _cgroup_mounts() -> list[Path]:
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            if right.split()[0] in CGROUP_FS_TYPES:
                found.append(Path(left.split()[4]))
    return found


def _create_cgroup_root(name: str) -> None:
    """``name`` in every cgroup hierarchy (the kubelet refuses a cgroupRoot that is missing)."""
    for mount in _cgroup_mounts():
        path = mount / name.lstrip("/")
        path.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):  # empty in a new cpuset cgroup
            parent, child = mount / knob, path / knob
            if parent.exists() and child.exists() and not child.read_text().strip():
                child.write_text(parent.read_text())


def _cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for mount in _cgroup_mounts():
        root = mount / name.lstrip("/")
        if not root.is_dir():
            continue
        for procs in root.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def _remove_cgroup_root(name: str, timeout: float = 20.0) -> None:
    """Kill what still runs in the pods' cgroups, then remove them, deepest first."""
    deadline = time.monotonic() + timeout
    while (pids := _cgroup_pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    for mount in _cgroup_mounts():
        root = mount / name.lstrip("/")
        if not root.is_dir():
            continue
        dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, root]:
            with contextlib.suppress(OSError):
                d.rmdir()


def _remove_pod_logs(pod_uids: set[str], data_root: Path) -> None:
    """This node's entries in /var/log/pods and /var/log/containers (the kubelet's fixed paths)."""
    pods_dir, containers_dir = Path("/var/log/pods"), Path("/var/log/containers")
    removed: set[str] = set()
    if pods_dir.is_dir():
        for entry in pods_dir.iterdir():
            ours = entry.name.rsplit("_", 1)[-1] in pod_uids
            if not ours and entry.is_dir():
                for link in entry.rglob("*.log"):
                    with contextlib.suppress(OSError):
                        if link.is_symlink() and str(os.readlink(link)).startswith(
                            str(data_root) + "/"
                        ):
                            ours = True
                            break
            if ours:
                shutil.rmtree(entry, ignore_errors=True)
                removed.add(str(entry))
    if containers_dir.is_dir():
        for link in containers_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(link)
                if any(target.startswith(r + "/") for r in removed):
                    link.unlink()
    for d in (containers_dir, pods_dir):  # made by a kubelet; gone when no kubelet uses them
        with contextlib.suppress(OSError):
            d.rmdir()


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def cleanup_node_workdir(workdir: Path) -> None:
    """Put down everything a node under ``workdir`` set up (idempotent; safe after a crash).

    Order: the kubelet (so it restarts nothing), the containers and dockerd/containerd, what
    still runs in the pods' cgroups, mounts under ``workdir`` (the kubelet's root dir is
    bind-mounted onto itself), the cgroups, the log links, the sysctl, the registry.
    """
    workdir = workdir.resolve()
    state = _read_state(workdir / "node-state.json")
    marker = str(workdir)
    if state.get("kubelet"):
        dockerd._terminate(int(state["kubelet"]), marker)
    docker_state = _read_state(workdir / "docker" / "state.json")
    cleanup_docker_workdir(workdir / "docker")
    cgroup_root = state.get("cgroup_root") or cgroup_root_for(workdir)
    _remove_cgroup_root(cgroup_root)
    kubelet_root = workdir / "kubelet" / "root"
    # The pods this kubelet ran: those it still has, and those it had (the kubelet forgets a
    # deleted pod before its log directory goes, so RealNode records them as they come).
    pod_uids: set[str] = set(state.get("pod_uids", []))
    with contextlib.suppress(OSError):
        pod_uids |= {p.name for p in (kubelet_root / "pods").iterdir()}
    dockerd._unmount_all(workdir)
    data_root = Path(docker_state.get("data_root") or workdir / "docker" / "data")
    _remove_pod_logs(pod_uids, data_root)
    shutil.rmtree(kubelet_root, ignore_errors=True)
    sysctl = state.get("bridge_nf_call_iptables")
    if sysctl is not None and BRIDGE_NF_SYSCTL.exists():
        with contextlib.suppress(OSError):
            if BRIDGE_NF_SYSCTL.read_text().strip() != str(sysctl):
                BRIDGE_NF_SYSCTL.write_text(f"{sysctl}\n")
    if state.get("registry"):
        dockerd._terminate(int(state["registry"]), marker)
    shutil.rmtree(workdir / "registry" / "storage", ignore_errors=True)
    with contextlib.suppress(OSError):
        (workdir / "node-state.json").unlink()


def pause_rootfs_tar(pause_binary: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.mode, info.mtime = 0o755, 0
        data = pause_binary.read_bytes()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class RealNode:
    """One real node. ``prepare()`` needs no control plane (registry, dockerd, images);
    ``join(...)`` starts the kubelet against a running control plane and waits for Ready.

    Attributes after start: ``registry`` (:class:`Registry`, ``.addr`` is ``127.0.0.1:PORT``),
    ``docker`` (:class:`DockerDaemon`, ``.host`` is ``unix://...``), ``base_image``
    (:class:`BaseImage`: busybox pushed as ``<registry>/relman/busybox:1``), ``node_ip``,
    ``timings`` (phase -> seconds).
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        bin_dir: Path,
        name: str = NODE_NAME,
        max_pods: int = 30,
        verbosity: int = 1,
        die_with_parent: bool = True,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.bin_dir = bin_dir
        self.name = name
        self.max_pods = max_pods
        self.verbosity = verbosity
        self.die_with_parent = die_with_parent
        self.cgroup_root = cgroup_root_for(self.workdir)
        self.registry: Registry | None = None
        self.docker: DockerDaemon | None = None
        self.base_image: BaseImage | None = None
        self.kubelet: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}
        self._state: dict[str, Any] = {}
        self._stopping = threading.Event()
        self._state_lock = threading.Lock()
        self._guard: subprocess.Popen[bytes] | None = None
        self._recorder: threading.Thread | None = None

    # ------------------------------------------------------------------ public API
    @property
    def node_ip(self) -> str:
        if self.docker is None:
            raise NodeError("node not prepared")
        return str(self.docker.bridge.gateway.ip)

    @property
    def kubelet_log(self) -> Path:
        return self.workdir / "logs" / "kubelet.log"

    def start_registry(self) -> Registry:
        """Stale cleanup, then the registry (call from the main thread: the registry gets a
        parent-death signal tied to the thread that starts it)."""
        if not os.access(self.bin_dir / "kubelet", os.X_OK):
            raise NodeError(f"{self.bin_dir / 'kubelet'} missing; run cluster/build.sh")
        t0 = time.monotonic()
        cleanup_node_workdir(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._state = {"cgroup_root": self.cgroup_root}
        # Cleans up if this process dies, however it dies (see _guard).
        with (self.workdir / "guard.log").open("ab") as guard_log:
            self._guard = subprocess.Popen(
                [sys.executable, "-I", "-c", _GUARD_MAIN, "guard", str(self.workdir)],
                stdin=subprocess.PIPE,
                stdout=guard_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if BRIDGE_NF_SYSCTL.exists():
            self._state["bridge_nf_call_iptables"] = BRIDGE_NF_SYSCTL.read_text().strip()
        self._save()
        self.timings["stale cleanup"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.registry = start_registry(self.workdir / "registry")
        assert self.registry.proc is not None
        self._state["registry"] = self.registry.proc.pid
        self._save()
        self.timings["registry"] = time.monotonic() - t0
        return self.registry

    def prepare_runtime(self) -> None:
        """dockerd with the oom-clamp runtime, the pause image and the busybox base (no
        long-lived process is started here other than dockerd's, so any thread may call it)."""
        if self.registry is None:
            raise NodeError("start_registry() first")
        t0 = time.monotonic()
        wrapper = self._write_runtime_wrapper()
        self.docker = start_docker_daemon(
            self.workdir / "docker",
            runtimes={RUNTIME_NAME: str(wrapper)},
            default_runtime=RUNTIME_NAME,
        )
        if self.docker.guard is not None:
            with self._state_lock:
                self._state["docker_guard"] = self.docker.guard.pid
            self._save()
        self.timings["dockerd"] = time.monotonic() - t0
        t0 = time.monotonic()
        self._build_pause_image()
        self.timings["pause image"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.base_image = build_base_image(self.docker, self.registry, BASE_REPOSITORY)
        self.timings["base image"] = time.monotonic() - t0

    def join(
        self,
        *,
        server: str,
        ca_cert: Path,
        ca_key: Path,
        admin_token: str,
        timeout: float = 90.0,
    ) -> None:
        """Start the kubelet against the control plane at ``server``; wait for Node Ready."""
        if self.docker is None:
            raise NodeError("prepare_runtime() first")
        t0 = time.monotonic()
        _create_cgroup_root(self.cgroup_root)
        kdir = self.workdir / "kubelet"
        cert, key = issue_client_cert(
            ca_cert, ca_key, kdir / "pki", "kubelet-client", f"system:node:{self.name}",
            ["system:nodes"],
        )  # fmt: skip
        kubeconfig = kdir / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "local",
                            "cluster": {
                                "server": server,
                                "certificate-authority-data": base64.b64encode(
                                    ca_cert.read_bytes()
                                ).decode(),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": "kubelet",
                            "user": {"client-certificate": str(cert), "client-key": str(key)},
                        }
                    ],
                    "contexts": [
                        {"name": "local", "context": {"cluster": "local", "user": "kubelet"}}
                    ],
                    "current-context": "local",
                },
                sort_keys=False,
            )
        )
        config = kdir / "config.yaml"
        config.write_text(yaml.safe_dump(self._kubelet_config(ca_cert), sort_keys=False))
        root = kdir / "root"
        for d in (root, kdir / "serving-pki", kdir / "dockershim", kdir / "volume-plugins"):
            d.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.bin_dir / "kubelet"),
            f"--config={config}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={root}",
            f"--cert-dir={kdir / 'serving-pki'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.node_ip}",
            "--container-runtime=docker",
            f"--docker-endpoint={self.docker.host}",
            "--network-plugin=",
            f"--pod-infra-container-image={PAUSE_IMAGE}",
            f"--experimental-dockershim-root-directory={kdir / 'dockershim'}",
            f"--volume-plugin-dir={kdir / 'volume-plugins'}",
            "--image-pull-progress-deadline=2m",
            f"--v={self.verbosity}",
        ]
        self.kubelet_log.parent.mkdir(parents=True, exist_ok=True)
        with self.kubelet_log.open("ab") as out:
            out.write(f"\n==== {time.ctime()} {' '.join(argv)}\n".encode())
            out.flush()
            preexec: Callable[[], None] | None = None
            if self.die_with_parent and threading.current_thread() is threading.main_thread():
                preexec = dockerd._die_with_parent
            env = {
                "PATH": dockerd._SYSTEM_PATH,
                "HOME": str(kdir),
                "LANG": "C.UTF-8",
                "NO_PROXY": "127.0.0.1,localhost",
            }
            self.kubelet = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=preexec,
            )
        self._state["kubelet"] = self.kubelet.pid
        self._save()
        self._stopping.clear()
        self._recorder = threading.Thread(
            target=self._record_pods, args=(root / "pods",), name="relman-node-pods", daemon=True
        )
        self._recorder.start()
        self._wait_ready(server, ca_cert, admin_token, time.monotonic() + timeout)
        self.timings["kubelet to node Ready"] = time.monotonic() - t0

    def check_alive(self) -> None:
        """Raise NodeError if the kubelet, dockerd or the registry has exited."""
        for what, proc in (
            ("kubelet", self.kubelet),
            ("dockerd", self.docker.proc if self.docker else None),
            ("docker-registry", self.registry.proc if self.registry else None),
        ):
            if proc is not None and proc.poll() is not None:
                raise NodeError(f"{what} exited with status {proc.returncode}")

    def pids(self) -> list[int]:
        """The node's processes: kubelet, dockerd, containerd, registry, the containers' shims
        and the containers themselves (for measuring memory)."""
        pids = [
            p.pid
            for p in (
                self.kubelet,
                self.docker.proc if self.docker else None,
                self.docker.containerd if self.docker else None,
                self.registry.proc if self.registry else None,
            )
            if p is not None and p.poll() is None
        ]
        if self.docker is not None and self.docker.containerd is not None:
            pids += _children(self.docker.containerd.pid)
        pids += sorted(_cgroup_pids(self.cgroup_root))
        return sorted(set(pids))

    def stop(self) -> None:
        """Stop the kubelet, then everything else (see :func:`cleanup_node_workdir`)."""
        if self.kubelet is not None:
            dockerd._stop(self.kubelet)
            self.kubelet = None
        self._stopping.set()
        if self._recorder is not None:
            self._recorder.join()
            self._recorder = None
        if self.docker is not None:
            stop_docker_daemon(self.docker)  # containers, dockerd, containerd, bridge
            self.docker = None
        if self.registry is not None:
            stop_registry(self.registry)
            self.registry = None
        cleanup_node_workdir(self.workdir)
        if self._guard is not None:  # nothing left for it to do: EOF, and it exits
            with contextlib.suppress(OSError):
                if self._guard.stdin is not None:
                    self._guard.stdin.close()
            try:
                self._guard.wait(dockerd.STOP_TIMEOUT * 3)
            except subprocess.TimeoutExpired:
                self._guard.kill()
                self._guard.wait(10)
            self._guard = None

    # ------------------------------------------------------------------ internals
    def _save(self) -> None:
        with self._state_lock:
            _write_state(self.workdir / "node-state.json", self._state)

    def _record_pods(self, pods_dir: Path) -> None:
        """Write down the UID of every pod the kubelet takes (its ``pods/<uid>`` directory),
        so the clean-up finds their ``/var/log/pods`` entries after the kubelet forgot them."""
        known: set[str] = set()
        while True:
            with contextlib.suppress(OSError):
                now = {p.name for p in pods_dir.iterdir()}
                if not now <= known:
                    known |= now
                    with self._state_lock:
                        self._state["pod_uids"] = sorted(known)
                    self._save()
            if self._stopping.wait(0.5):
                return

    def _write_runtime_wrapper(self) -> Path:
        runc = dockerd._which("runc")
        if runc is None:
            raise ContainersUnavailable("runc is not installed")
        path = self.workdir / "bin" / RUNTIME_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(OOM_CLAMP_RUNC.format(python=sys.executable, runc=runc))
        path.chmod(0o755)
        return path

    def _build_pause_image(self) -> None:
        assert self.docker is not None
        gcc = dockerd._which("gcc")
        if gcc is None:
            raise NodeError("gcc is not installed (needed to build the pause image)")
        out = self.workdir / "pause" / "pause"
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [gcc, "-Os", "-Wall", "-static", f"-DVERSION=v{KUBE_VERSION}", "-o", str(out),
             str(PAUSE_SOURCE)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise NodeError(f"building pause with gcc failed (libc6-dev?):\n{proc.stderr}")
        self.docker.docker_bytes(
            "import", "--change", 'ENTRYPOINT ["/pause"]', "-", PAUSE_IMAGE,
            input=pause_rootfs_tar(out),
        )  # fmt: skip

    def _kubelet_config(self, ca_cert: Path) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.node_ip,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(ca_cert)},
            },
            # Only clients with a certificate from the cluster CA get in (the API server's).
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "failSwapOn": False,
            "makeIPTablesUtilChains": False,
            "hairpinMode": "none",
            "oomScoreAdj": 0,
            "maxPods": self.max_pods,
            "clusterDomain": "cluster.local",
            "clusterDNS": [self.node_ip],
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            # Node Ready is seen at the first status update after the runtime is up.
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "20s",
            "kubeAPIQPS": 50,
            "kubeAPIBurst": 100,
        }

    def _wait_ready(self, server: str, ca_cert: Path, token: str, deadline: float) -> None:
        assert self.kubelet is not None
        ctx = ssl.create_default_context(cafile=str(ca_cert))
        last = "not asked yet"
        while True:
            if self.kubelet.poll() is not None:
                raise NodeError(
                    f"kubelet exited with status {self.kubelet.returncode}; "
                    f"its log ({self.kubelet_log}) ends:\n{dockerd._log_tail(self.kubelet_log)}"
                )
            req = urllib.request.Request(
                f"{server}/api/v1/nodes/{self.name}",
                headers={"Authorization": f"Bearer {token}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
                    node = json.loads(resp.read())
                conditions = {c["type"]: c for c in node.get("status", {}).get("conditions", [])}
                ready = conditions.get("Ready", {})
                if ready.get("status") == "True":
                    return
                last = f"Ready={ready.get('status')} ({ready.get('message', '')})"
            except urllib.error.HTTPError as err:
                last = f"HTTP {err.code}"
            except (urllib.error.URLError, OSError, ValueError) as err:
                last = repr(err)
            if time.monotonic() > deadline:
                raise NodeError(
                    f"node {self.name} not Ready in time (last: {last}); kubelet log "
                    f"({self.kubelet_log}) ends:\n{dockerd._log_tail(self.kubelet_log)}"
                )
            time.sleep(0.2)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def rss_bytes(pids: list[int]) -> int:
    """The summed resident set size of ``pids`` (those still running)."""
    total = 0
    for pid in set(pids):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _guard(workdir: Path) -> None:
    """The node's guardian: block until stdin closes (the node stopped, or its owner died),
    let the dockerd guardian finish first, then clean up."""
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()
    docker_guard = _read_state(workdir / "node-state.json").get("docker_guard")
    deadline = time.monotonic() + dockerd.STOP_TIMEOUT * 3
    while docker_guard and dockerd._running(int(docker_guard), str(workdir)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    cleanup_node_workdir(workdir)
