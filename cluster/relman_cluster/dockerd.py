"""A private Docker engine, a loopback registry and a busybox base image: the plumbing shared
by the local cluster's real node (:mod:`relman_cluster.node`) and the test suite's container
fixtures (``tests/support/containers.py``). Standard library only: the guardian runs this file
as a script (``python -I dockerd.py guard WORKDIR``).

``start_docker_daemon(workdir)`` -> :class:`DockerDaemon`
    A private ``dockerd`` (Debian ``docker.io``) with its own ``containerd``: own socket, data
    root, exec root and pidfile under ``workdir``, storage driver overlay2, cgroupfs cgroup
    driver, runc (never crun) unless other runtimes are registered (``runtimes=``,
    ``default_runtime=``). ``.host`` is the ``unix://...`` value for ``DOCKER_HOST``, ``.pid``
    the daemon's pid, ``.docker(*args)`` runs the docker CLI against it (and only it:
    ``DOCKER_HOST`` and a private ``DOCKER_CONFIG`` are set), ``.env`` is an environment for
    other clients. :func:`stop_docker_daemon` stops it by pid; leftover mounts are unmounted
    and its data and exec roots removed (``dockerd.log`` is kept).
``start_registry(workdir)`` -> :class:`Registry`
    Debian's ``docker-registry`` (distribution 2.8) on ``127.0.0.1:<free port>``, filesystem
    storage under ``workdir``, deletes enabled. ``.addr`` is ``127.0.0.1:PORT``.
``build_base_image(daemon, registry)`` -> :class:`BaseImage`
    A ~2 MB image holding ``/bin/busybox`` from ``busybox-static``, applet links (``sh`` ...)
    and ``/etc/passwd`` with ``root`` and ``nobody``, made with ``docker import``, pushed as
    ``<registry>/<repository>:1``. ``.ref`` is that tag, ``.digest`` its manifest digest as
    the registry reports it, ``.digest_ref`` is ``repo@digest``.

:func:`containers_unavailable_reason` says why these cannot run here (binaries missing, not
root), without starting anything; everything else raises :class:`ContainersUnavailable` with
the reason (a daemon's log tail included).

Networking and isolation (why two daemons never collide):

* Each daemon is private to the process that started it: its own paths, its own
  ``containerd`` (passed with ``--containerd``, so a system containerd is never picked up) and
  its own config file (``/etc/docker/daemon.json`` is not read).
* Its containers sit on a Linux bridge made for it (``rlm<8 hex>``), on a /24 taken from
  10.213.0.0/16 that overlaps none of the host's routes (chosen under a host-wide lock so two
  daemons cannot pick the same one) and deleted when it stops; bridges left by an owner that
  died are deleted by the next one to make a bridge. The daemon runs with ``--iptables=false
  --ip-forward=false --ip-masq=false``: it changes no iptables rule and no sysctl (two dockerds
  with iptables on would flush each other's chains), so containers reach the host and each
  other on that bridge but nothing beyond it. Published ports go through docker-proxy:
  publish on ``127.0.0.1``. A build that must download something uses ``--network host``.
* Processes are started in their own session. A guardian process per daemon waits for its
  owner to stop the daemon or to die (even by SIGKILL) and then puts everything down in
  order; the registry gets SIGTERM from the kernel when its owner dies (a parent-death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import http.client
import io
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

START_TIMEOUT = float(os.environ.get("RELMAN_TEST_DOCKER_START_TIMEOUT", "60"))
STOP_TIMEOUT = 30.0
BRIDGE_POOL = ipaddress.IPv4Network("10.213.0.0/16")
BRIDGE_ALIAS = "relman pid="
# What bridges were labelled with before (still recognised as ours when stale).
_OLD_BRIDGE_ALIASES = ("relman-tests pid=",)
LOCK_FILE = Path("/run/lock/relman-test-containers.lock")
BASE_REPOSITORY = "relman-test/busybox"
BASE_TAG = "1"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ash", "cat", "echo", "env", "false", "hostname", "httpd", "id", "ls")
APPLETS_MORE = ("mkdir", "rm", "sleep", "test", "true", "wget")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
# Where root's tools live even when PATH lacks the sbin dirs.
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PR_SET_PDEATHSIG = 1


class ContainersUnavailable(RuntimeError):
    """Docker, the registry or the base image cannot be had on this machine (with why)."""


# ---------------------------------------------------------------------------------------------
# Can Docker run here?
# ---------------------------------------------------------------------------------------------


def _search_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), _SYSTEM_PATH])


def _which(name: str) -> str | None:
    return shutil.which(name, path=_search_path())


def docker_cli_path() -> str | None:
    """The docker CLI installed beside dockerd (Debian: /usr/sbin/dockerd, /usr/bin/docker).

    Another ``docker`` earlier on PATH (say a newer CLI in /usr/local/bin) may not match the
    daemon's API or may expect plugins (buildx) that are not there.
    """
    dockerd = _which("dockerd")
    if dockerd is not None:
        sbin = Path(dockerd).resolve().parent
        for candidate in (sbin / "docker", sbin.parent / "bin" / "docker"):
            if os.access(candidate, os.X_OK):
                return str(candidate)
    return _which("docker")


def _is_static_elf(path: Path) -> bool:
    """Whether ``path`` is an ELF executable without a program interpreter (statically linked)."""
    with path.open("rb") as fh:
        head = fh.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only; what Debian ships here
            return False
        order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
        phoff = int.from_bytes(head[32:40], order)
        phentsize = int.from_bytes(head[54:56], order)
        phnum = int.from_bytes(head[56:58], order)
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    types = (int.from_bytes(table[i : i + 4], order) for i in range(0, len(table), phentsize))
    return 3 not in types  # PT_INTERP


def containers_unavailable_reason() -> str | None:
    """Why a private dockerd + registry + busybox base cannot be had here, or None if they can.

    Only what can be known without starting anything; a daemon that then fails to start is
    reported by the fixture with its log tail.
    """
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root (a private dockerd needs root)")
    packages = {
        "dockerd": "docker.io",
        "containerd": "containerd",
        "runc": "runc",
        "docker-proxy": "docker.io",
        "docker-registry": "docker-registry",
        "ip": "iproute2",
    }
    missing = sorted({pkg for tool, pkg in packages.items() if _which(tool) is None})
    if docker_cli_path() is None and "docker.io" not in missing:
        missing.append("docker.io")
    if not BUSYBOX.exists():
        missing.append("busybox-static")
    elif not _is_static_elf(BUSYBOX):
        problems.append(f"{BUSYBOX} is not statically linked (install busybox-static)")
    if missing:
        problems.insert(0, "missing Debian packages: " + " ".join(sorted(set(missing))))
    if not problems:
        return None
    return (
        "; ".join(problems)
        + " — `.ci/run` installs them: apt-get install -y --no-install-recommends docker.io "
        "containerd runc docker-registry busybox-static iptables iproute2"
    )


# ---------------------------------------------------------------------------------------------
# Processes, waits, mounts
# ---------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the owner dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _spawn(
    argv: list[str], log: Path, env: Mapping[str, str], die_with_parent: bool = True
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (Ctrl-C reaches the owner only), output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )


def _log_tail(log: Path, lines: int = 25) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _wait_ready(
    what: str,
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    log: Path,
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll ``ready`` until true; the process exiting or the deadline passing raises with why."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if ready():
                return
        code = proc.poll()
        if code is not None:
            raise ContainersUnavailable(
                f"{what} exited with status {code} before it was ready; its log ({log}) ends:\n"
                + _log_tail(log)
            )
        if time.monotonic() > deadline:
            raise ContainersUnavailable(
                f"{what} was not ready after {timeout:.0f}s; its log ({log}) ends:\n"
                + _log_tail(log)
            )
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM by pid, wait; SIGKILL if it does not go within ``timeout``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    prefix = str(root)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[4]
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _unmount_all(root: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for point in _mounts_under(root):
        libc.umount2(point.encode(), 2)  # MNT_DETACH


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (made with its folder if missing), held for the block:
    processes of this host that want the same thing wait in turn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _host_lock() -> contextlib.AbstractContextManager[None]:
    """A lock every session on this host takes while it picks and creates its bridge."""
    path = LOCK_FILE if LOCK_FILE.parent.is_dir() else Path(tempfile.gettempdir()) / LOCK_FILE.name
    return file_lock(path)


def _ip(*args: str) -> str:
    proc = subprocess.run(
        [_which("ip") or "ip", *args], capture_output=True, text=True, check=False, timeout=30
    )
    if proc.returncode != 0:
        raise ContainersUnavailable(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------
# The bridge
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bridge:
    name: str
    gateway: ipaddress.IPv4Interface  # the host's address on it, with the prefix

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self.gateway.network


def _remove_stale_bridges() -> None:
    """Delete bridges left by sessions that died (their owner pid is gone)."""
    for link in json.loads(_ip("-j", "link", "show", "type", "bridge") or "[]"):
        alias = link.get("ifalias", "")
        for prefix in (BRIDGE_ALIAS, *_OLD_BRIDGE_ALIASES):
            if alias.startswith(prefix):
                pid = alias[len(prefix) :]
                break
        else:
            continue
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(ContainersUnavailable):
                _ip("link", "delete", link["ifname"])


def _host_networks() -> list[ipaddress.IPv4Network]:
    nets = []
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        dst = route.get("dst", "default")
        if dst != "default":
            nets.append(ipaddress.ip_network(dst, strict=False))
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def create_bridge() -> Bridge:
    """A new bridge on a /24 of BRIDGE_POOL that overlaps none of the host's routes."""
    name = "rlm" + os.urandom(4).hex()
    with _host_lock():
        _remove_stale_bridges()
        taken = _host_networks()
        candidates: list[ipaddress.IPv4Network] = list(BRIDGE_POOL.subnets(new_prefix=24))
        start = random.randrange(len(candidates))
        for net in candidates[start:] + candidates[:start]:
            if not any(net.overlaps(other) for other in taken):
                break
        else:
            raise ContainersUnavailable(f"every /24 of {BRIDGE_POOL} overlaps a host route")
        gateway = ipaddress.IPv4Interface(f"{net[1]}/{net.prefixlen}")
        _ip("link", "add", "name", name, "type", "bridge")
        try:
            _ip("link", "set", "dev", name, "alias", f"{BRIDGE_ALIAS}{os.getpid()}")
            _ip("address", "add", str(gateway), "dev", name)
            _ip("link", "set", "dev", name, "up")
        except ContainersUnavailable:
            delete_bridge(name)
            raise
    return Bridge(name=name, gateway=gateway)


def delete_bridge(name: str) -> None:
    with contextlib.suppress(ContainersUnavailable):
        _ip("link", "delete", name)


# ---------------------------------------------------------------------------------------------
# The Docker daemon
# ---------------------------------------------------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


@dataclass
class DockerDaemon:
    """A running private dockerd (see the module docstring)."""

    workdir: Path
    socket_path: Path
    cli: str
    bridge: Bridge
    startup_seconds: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    containerd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    guard: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """``DOCKER_HOST`` for this daemon."""
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log(self) -> Path:
        return self.workdir / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        """An environment whose Docker clients talk to this daemon only."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.workdir / "cli-config")
        env.pop("DOCKER_CONTEXT", None)
        env.pop("DOCKER_TLS_VERIFY", None)
        env.pop("DOCKER_CERT_PATH", None)
        return env

    def docker(
        self,
        *args: str,
        input: bytes | str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """``docker ARGS`` against this daemon; raises with its output unless ``check=False``."""
        data = input.decode() if isinstance(input, bytes) else input
        proc = subprocess.run(
            [self.cli, *args],
            input=data,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def docker_bytes(
        self, *args: str, input: bytes, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[bytes]:
        """``docker ARGS`` with binary stdin (``import -``, ``load``); raises on failure."""
        proc = subprocess.run(
            [self.cli, *args], input=input, capture_output=True, env=self.env, timeout=timeout
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {proc.returncode}\n"
                f"stderr:\n{proc.stderr.decode(errors='replace')}"
            )
        return proc

    def api(self, method: str, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """One Engine API call on the socket: (status, body)."""
        conn = _UnixHTTPConnection(str(self.socket_path), timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def ping(self) -> bool:
        status, body = self.api("GET", "/_ping", timeout=2.0)
        return status == 200 and body == b"OK"


def start_docker_daemon(
    workdir: Path,
    *,
    runtimes: Mapping[str, str] | None = None,
    default_runtime: str = "runc",
) -> DockerDaemon:
    """Start containerd + dockerd under ``workdir``; raises ContainersUnavailable with why.

    ``runtimes`` (name -> path of a runc-compatible program) are registered with
    ``--add-runtime``; ``default_runtime`` is the one containers get unless they ask.

    A guardian process is started first (``python -I dockerd.py guard WORKDIR``). It
    waits for its stdin to close, which happens when the owner stops the daemon or when
    the owner dies however it dies, then runs :func:`cleanup_docker_workdir`: one cleanup path
    that puts things down in order (containers, dockerd, containerd, mounts, dirs, bridge).
    """
    cli = docker_cli_path()
    if cli is None:
        raise ContainersUnavailable("no docker CLI found")
    workdir.mkdir(parents=True, exist_ok=True)
    data_root, exec_root = workdir / "data", workdir / "exec"
    # Unix socket paths are limited to 107 bytes: containerd's and dockerd's sockets live in
    # the exec root, which moves to a short directory when the session's tmp path is long.
    if len(str(exec_root / "containerd" / "containerd.sock.ttrpc")) > 100:
        exec_root = Path(tempfile.mkdtemp(prefix="relman-dockerd-"))
    for d in (data_root, exec_root, workdir / "cli-config"):
        d.mkdir(parents=True, exist_ok=True)
    sock = exec_root / "docker.sock"
    ctd_sock = exec_root / "containerd" / "containerd.sock"
    (workdir / "daemon.json").write_text("{}\n")
    (workdir / "containerd.toml").write_text(
        "version = 2\n"
        f'root = "{data_root}/containerd"\n'
        f'state = "{exec_root}/containerd"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{ctd_sock}"\n'
    )
    state: dict[str, Any] = {
        "cli": cli,
        "host": f"unix://{sock}",
        "data_root": str(data_root),
        "exec_root": str(exec_root),
    }
    _save_state(workdir, state)
    env = {"PATH": _SYSTEM_PATH, "HOME": str(workdir), "LANG": "C.UTF-8"}
    t0 = time.monotonic()
    with (workdir / "guard.log").open("ab") as guard_log:
        guard = subprocess.Popen(
            [sys.executable, "-I", __file__, "guard", str(workdir)],
            stdin=subprocess.PIPE,
            stdout=guard_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        bridge = create_bridge()
    except BaseException:
        _close_guard(guard)
        raise
    state["bridge"] = bridge.name
    _save_state(workdir, state)
    daemon = DockerDaemon(workdir=workdir, socket_path=sock, cli=cli, bridge=bridge, guard=guard)
    try:
        # No parent-death signal for these two: if the owner dies, the guardian stops them in
        # order (containerd going first would strand the containers' shims and mounts).
        daemon.containerd = _spawn(
            [_which("containerd") or "containerd", "--config", str(workdir / "containerd.toml")],
            workdir / "containerd.log",
            env,
            die_with_parent=False,
        )
        state["containerd"] = daemon.containerd.pid
        _save_state(workdir, state)
        _wait_ready("containerd", daemon.containerd, ctd_sock.is_socket, workdir / "containerd.log")
        runtime_args = [
            arg
            for name, path in (runtimes or {}).items()
            for arg in ("--add-runtime", f"{name}={path}")
        ]
        runtime_args += ["--default-runtime", default_runtime]
        daemon.proc = _spawn(
            [
                _which("dockerd") or "dockerd",
                "--config-file", str(workdir / "daemon.json"),
                "--containerd", str(ctd_sock),
                "--data-root", str(data_root),
                "--exec-root", str(exec_root),
                "--host", daemon.host,
                "--pidfile", str(workdir / "dockerd.pid"),
                "--storage-driver", "overlay2",
                "--exec-opt", "native.cgroupdriver=cgroupfs",
                *runtime_args,
                "--bridge", daemon.bridge.name,
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ],
            daemon.log,
            env,
            die_with_parent=False,
        )  # fmt: skip
        state["dockerd"] = daemon.proc.pid
        _save_state(workdir, state)
        _wait_ready("dockerd", daemon.proc, daemon.ping, daemon.log)
    except BaseException:
        stop_docker_daemon(daemon)
        raise
    daemon.startup_seconds = time.monotonic() - t0
    return daemon


def stop_docker_daemon(daemon: DockerDaemon) -> None:
    """Close the guardian's stdin and wait for its cleanup; then make sure, and reap."""
    if daemon.guard is not None:
        _close_guard(daemon.guard)
    cleanup_docker_workdir(daemon.workdir)  # a no-op when the guardian did its work
    for proc in (daemon.proc, daemon.containerd):
        if proc is not None:
            _stop(proc)  # only reaps: the cleanup stopped it


def _close_guard(guard: subprocess.Popen[bytes]) -> None:
    """Tell the guardian to clean up (EOF on its stdin) and wait until it has."""
    with contextlib.suppress(OSError):
        if guard.stdin is not None:
            guard.stdin.close()
    try:
        guard.wait(STOP_TIMEOUT * 3)
    except subprocess.TimeoutExpired:
        guard.kill()
        guard.wait(10)


def _save_state(workdir: Path, state: Mapping[str, Any]) -> None:
    tmp = workdir / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    tmp.replace(workdir / "state.json")


def _running(pid: int, marker: str) -> bool:
    """Whether ``pid`` runs (not a zombie) and is ours: its command line holds ``marker``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z" and marker in cmdline


def _terminate(pid: int, marker: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``pid`` (if it is ours) and wait for it to go; SIGKILL after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        if not _running(pid, marker):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _running(pid, marker) and time.monotonic() < deadline:
            time.sleep(0.02)


def cleanup_docker_workdir(workdir: Path) -> None:
    """Put down what start_docker_daemon set up under ``workdir`` (idempotent).

    Containers still running are killed (each would hold dockerd's shutdown for its stop
    timeout), then dockerd and containerd are stopped by pid, leftover mounts unmounted, the
    data and exec roots removed and the bridge deleted. The logs stay.
    """
    try:
        state = json.loads((workdir / "state.json").read_text())
    except (OSError, ValueError):
        return
    marker = str(workdir)
    dockerd, containerd = state.get("dockerd"), state.get("containerd")
    if dockerd and _running(dockerd, marker):
        env = dict(os.environ, DOCKER_HOST=state["host"], DOCKER_CONFIG=str(workdir / "cli-config"))
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            ps = subprocess.run(
                [state["cli"], "ps", "-q"], capture_output=True, text=True, env=env, timeout=20
            )
            if ps.stdout.split():
                subprocess.run(
                    [state["cli"], "kill", *ps.stdout.split()],
                    capture_output=True,
                    env=env,
                    timeout=30,
                )
        _terminate(dockerd, marker)
    if containerd:
        _terminate(containerd, marker)
    for key in ("exec_root", "data_root"):
        root = Path(state[key])
        _unmount_all(root)
        shutil.rmtree(root, ignore_errors=True)
    if state.get("bridge"):
        delete_bridge(state["bridge"])


def _guard(workdir: Path) -> None:
    """The guardian: block until stdin closes (stop, or the owner gone), then clean up."""
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()
    cleanup_docker_workdir(workdir)


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------


@dataclass
class Registry:
    """A running Debian docker-registry on loopback (see the module docstring)."""

    addr: str
    workdir: Path
    startup_seconds: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def get(
        self, path: str, headers: Mapping[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        """One request to the registry's HTTP API: (status, headers, body); errors returned."""
        req = urllib.request.Request(self.url + path, headers=dict(headers or {}), method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def manifest(self, repository: str, reference: str) -> tuple[str, str, bytes]:
        """(media type, digest, body) of a manifest, asked for in every format as it is stored.

        The Docker v2 types are in the Accept header beside the OCI ones: a Docker-format
        manifest asked for with only the OCI type comes back converted (another digest).
        """
        status, headers, body = self.get(
            f"/v2/{repository}/manifests/{reference}", {"Accept": ", ".join(MANIFEST_TYPES)}
        )
        if status != 200:
            raise AssertionError(f"manifest {repository}:{reference}: HTTP {status} {body!r}")
        digest = headers.get("Docker-Content-Digest", "")
        computed = "sha256:" + hashlib.sha256(body).hexdigest()
        if digest != computed:
            raise AssertionError(f"registry says {digest}, the body hashes to {computed}")
        return headers.get("Content-Type", ""), digest, body

    def ready(self) -> bool:
        status, _, _ = self.get("/v2/")
        return status == 200


def start_registry(workdir: Path, attempts: int = 3) -> Registry:
    """Start docker-registry on a free loopback port (another port if that one was taken)."""
    binary = _which("docker-registry")
    if binary is None:
        raise ContainersUnavailable("docker-registry is not installed")
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    log = workdir / "registry.log"
    config = workdir / "config.yml"
    # A clean environment: REGISTRY_* variables would override the config file.
    env = {"PATH": _SYSTEM_PATH, "HOME": str(workdir)}
    error: ContainersUnavailable | None = None
    for _ in range(attempts):
        addr = f"127.0.0.1:{_free_port()}"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {addr}\n"
        )
        t0 = time.monotonic()
        reg = Registry(addr=addr, workdir=workdir)
        reg.proc = _spawn([binary, "serve", str(config)], log, env)
        try:
            _wait_ready("docker-registry", reg.proc, reg.ready, log)
        except ContainersUnavailable as err:
            stop_registry(reg)
            error = err
            if "address already in use" not in _log_tail(log, 5):
                raise
            continue
        except BaseException:
            stop_registry(reg)
            raise
        reg.startup_seconds = time.monotonic() - t0
        return reg
    assert error is not None
    raise error


def stop_registry(reg: Registry) -> None:
    if reg.proc is not None:
        _stop(reg.proc)
    shutil.rmtree(reg.workdir / "storage", ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The base image
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseImage:
    repository: str  # <registry>/relman-test/busybox
    tag: str
    digest: str  # sha256:... of the manifest, as the registry serves it
    build_seconds: float = 0.0

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def digest_ref(self) -> str:
        return f"{self.repository}@{self.digest}"


def busybox_rootfs_tar() -> bytes:
    """A root filesystem (tar) with a static busybox, applet links and root/nobody users.

    Deterministic: the same busybox gives the same bytes.
    """
    buf = io.BytesIO()

    def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.linkname = kind, mode, 0, link
        info.uid = info.gid = 0
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data else None)

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            add(d, tarfile.DIRTYPE, mode)
        add("bin/busybox", tarfile.REGTYPE, 0o755, BUSYBOX.read_bytes())
        for applet in APPLETS + APPLETS_MORE:
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, PASSWD.encode())
        add("etc/group", tarfile.REGTYPE, 0o644, GROUP.encode())
    return buf.getvalue()


def build_base_image(
    daemon: DockerDaemon, registry: Registry, base_repository: str = BASE_REPOSITORY
) -> BaseImage:
    """``docker import`` the busybox rootfs, push it, read its digest back from the registry."""
    t0 = time.monotonic()
    repository = f"{registry.addr}/{base_repository}"
    ref = f"{repository}:{BASE_TAG}"
    daemon.docker_bytes(
        "import", "--change", 'CMD ["sh"]', "--change", "ENV PATH=/bin",
        "-", ref, input=busybox_rootfs_tar(),
    )  # fmt: skip
    pushed = daemon.docker("push", ref).stdout
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
    _, digest, _ = registry.manifest(base_repository, BASE_TAG)
    if match is None or match.group(1) != digest:
        raise AssertionError(f"docker push said {pushed!r}; the registry serves {digest}")
    return BaseImage(
        repository=repository,
        tag=BASE_TAG,
        digest=digest,
        build_seconds=time.monotonic() - t0,
    )


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "guard":
    _guard(Path(sys.argv[2]))
