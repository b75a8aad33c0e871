"""Run etcd, kube-apiserver, kube-controller-manager and kube-scheduler on loopback ports."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from relman_cluster.build import default_cache_dir

log = logging.getLogger("relman_cluster.controlplane")

SERVICE_CIDR = "10.96.0.0/16"
DEFAULT_CONTROLLERS = (
    "deployment",
    "replicaset",
    "garbagecollector",
    "namespace",
    "serviceaccount",
    "serviceaccount-token",
    "endpoint",
    "endpointslice",
    "statefulset",
    "daemonset",
    "job",
    "cronjob",
    "replicationcontroller",
    "resourcequota",
    "disruption",
    "podgc",
    "clusterrole-aggregation",
    "ttl",
    "pvc-protection",
    "pv-protection",
)


class ControlPlaneError(RuntimeError):
    """A control-plane component failed to start or to become healthy."""


def free_ports(n: int) -> list[int]:
    """Return n distinct free TCP ports on 127.0.0.1 (all sockets held until all are chosen)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    sa_pub: Path


def generate_pki(directory: Path, extra_sans: Sequence[str] = ()) -> Pki:
    """Self-signed CA, an apiserver serving cert signed by it, and a service-account key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relman-local-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    srv_key = ec.generate_private_key(ec.SECP256R1())
    service_ip = ipaddress.IPv4Network(SERVICE_CIDR)[1]
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(service_ip),
    ]
    for san in extra_sans:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            sans.append(x509.DNSName(san))
    srv_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    pki = Pki(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    _write(pki.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(pki.ca_key, _pem_key(ca_key))
    _write(pki.serving_cert, srv_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(pki.serving_key, _pem_key(srv_key))
    _write(pki.sa_key, _pem_key(sa_key))
    _write(pki.sa_pub, sa_pub, 0o644)
    return pki


def issue_client_cert(
    ca_cert: Path, ca_key: Path, out_dir: Path, stem: str, common_name: str, orgs: list[str]
) -> tuple[Path, Path]:
    """A client certificate (and key) signed by the cluster CA: (cert path, key path)."""
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    names.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(names))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(signer, hashes.SHA256())
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out_dir / f"{stem}.crt", out_dir / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(_pem_key(key))
    return cert_path, key_path


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM the child if the parent thread dies (best effort)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class _Proc:
    """One managed child process whose output goes to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    def start(self, die_with_parent: bool) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_fh.write(f"\n==== {time.ctime()} {' '.join(self.argv)}\n".encode())
        self._log_fh.flush()
        preexec: Callable[[], None] | None = None
        if die_with_parent and threading.current_thread() is threading.main_thread():
            preexec = _set_pdeathsig
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=preexec,
        )
        log.info("started %s (pid %d), log %s", self.name, self.popen.pid, self.log_path)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        p = self.popen
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not exit after SIGTERM; killing", self.name)
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(timeout=timeout)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler on free loopback ports.

    Usage::

        with ControlPlane(workdir) as cp:
            print(cp.kubeconfig)
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        etcd_binary: str | None = None,
        controllers: Sequence[str] = DEFAULT_CONTROLLERS,
        authorization_mode: str = "RBAC",
        verbosity: int = 1,
        die_with_parent: bool = True,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.bin_dir = Path(bin_dir) if bin_dir is not None else default_cache_dir() / "bin"
        self.etcd_binary = etcd_binary or shutil.which("etcd") or "/usr/bin/etcd"
        self.controllers = list(controllers)
        self.authorization_mode = authorization_mode
        self.verbosity = verbosity
        self.die_with_parent = die_with_parent
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.token = secrets.token_hex(24)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.etcd_port = 0
        self.apiserver_port = 0
        self.controller_manager_port = 0
        self.scheduler_port = 0
        self._procs: list[_Proc] = []
        self._pki: Pki | None = None
        self.kubelet_client_cert: Path | None = None
        self.kubelet_client_key: Path | None = None
        self.startup_seconds: float | None = None

    # ------------------------------------------------------------------ public API
    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def ca_file(self) -> Path:
        if self._pki is None:
            raise ControlPlaneError("control plane not started")
        return self._pki.ca_cert

    @property
    def ca_key_file(self) -> Path:
        if self._pki is None:
            raise ControlPlaneError("control plane not started")
        return self._pki.ca_key

    def pids(self) -> list[int]:
        """The running components' pids."""
        return [p.popen.pid for p in self._procs if p.popen is not None and p.alive()]

    def start(self, timeout: float = 120.0) -> None:
        """Start all components; return once the apiserver is ready and all components healthy."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            if not os.access(self.bin_dir / b, os.X_OK):
                raise ControlPlaneError(f"{self.bin_dir / b} missing; run cluster/build.sh")
        if not os.access(self.etcd_binary, os.X_OK):
            raise ControlPlaneError(f"etcd binary {self.etcd_binary} missing (etcd-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (
            self.etcd_port,
            etcd_peer_port,
            self.apiserver_port,
            self.controller_manager_port,
            self.scheduler_port,
        ) = free_ports(5)
        try:
            self._pki = generate_pki(self.workdir / "pki")
            # The API server's client certificate for kubelets (logs, exec, port-forward).
            self.kubelet_client_cert, self.kubelet_client_key = issue_client_cert(
                self._pki.ca_cert, self._pki.ca_key, self.workdir / "pki",
                "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"],
            )  # fmt: skip
            _write(self.workdir / "tokens.csv", f'{self.token},admin,admin,"system:masters"\n')
            self._write_kubeconfig()
            self._start_etcd(etcd_peer_port, deadline)
            self._start_apiserver(deadline)
            self._start_controller_manager()
            self._start_scheduler()
            self._wait_component_healthz(
                "kube-controller-manager", self.controller_manager_port, deadline
            )
            self._wait_component_healthz("kube-scheduler", self.scheduler_port, deadline)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        log.info("control plane ready at %s in %.1fs", self.server, self.startup_seconds)

    def stop(self) -> None:
        """Stop components in reverse start order: SIGTERM, then SIGKILL after a grace period."""
        while self._procs:
            proc = self._procs.pop()
            try:
                proc.stop()
            except Exception:  # pragma: no cover - best effort
                log.exception("failed to stop %s", proc.name)

    def check_alive(self) -> None:
        """Raise ControlPlaneError if any component has exited."""
        for p in self._procs:
            if not p.alive():
                raise ControlPlaneError(f"{p.name} exited; log tail:\n{p.log_tail()}")

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for k in ("KUBECONFIG", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(k, None)
        env["NO_PROXY"] = "127.0.0.1,localhost"
        return env

    def _spawn(self, name: str, argv: list[str]) -> _Proc:
        proc = _Proc(name, argv, self.workdir / "logs" / f"{name}.log", self._env())
        proc.start(self.die_with_parent)
        self._procs.append(proc)
        return proc

    def _write_kubeconfig(self) -> None:
        assert self._pki is not None
        ca_b64 = base64.b64encode(self._pki.ca_cert.read_bytes()).decode()
        cfg: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "relman-local",
                    "cluster": {"server": self.server, "certificate-authority-data": ca_b64},
                }
            ],
            "users": [{"name": "relman-admin", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "relman-local",
                    "context": {"cluster": "relman-local", "user": "relman-admin"},
                }
            ],
            "current-context": "relman-local",
            "preferences": {},
        }
        _write(self.kubeconfig, yaml.safe_dump(cfg, sort_keys=False))

    def _start_etcd(self, peer_port: int, deadline: float) -> None:
        data_dir = self.workdir / "etcd"
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        proc = self._spawn(
            "etcd",
            [
                self.etcd_binary,
                "--name=relman",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=relman={peer}",
                "--initial-cluster-state=new",
                "--log-level=warn",
                "--logger=zap",
            ],
        )

        def probe() -> bool:
            with urllib.request.urlopen(f"{client}/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") in ("true", True))

        self._wait(proc, "etcd /health", probe, deadline)

    def _start_apiserver(self, deadline: float) -> None:
        assert self._pki is not None
        pki = self._pki
        argv = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            "--insecure-port=0",
            f"--cert-dir={self.workdir / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            # Populates extension-apiserver-authentication fully (quiets component logs).
            f"--requestheader-client-ca-file={pki.ca_cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--authorization-mode={self.authorization_mode}",
            # Minimal admission: no ServiceAccount (no token volume / SA race on fresh
            # namespaces) and no TaintNodesByCondition (no node-lifecycle controller here).
            "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ResourceQuota,"
            "DefaultTolerationSeconds,Priority",
            "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition,"
            "DefaultStorageClass,StorageObjectInUseProtection,PersistentVolumeClaimResize,"
            "MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            # 127.0.0.1 is not a valid Endpoints address; keep the kubernetes Service endpointless.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--event-ttl=1h",
            # The kubelet emulator serves pods/log on the node's InternalIP (loopback).
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--kubelet-client-certificate={self.kubelet_client_cert}",
            f"--kubelet-client-key={self.kubelet_client_key}",
            f"--v={self.verbosity}",
            *self.extra_apiserver_args,
        ]
        proc = self._spawn("kube-apiserver", argv)
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))

        def probe() -> bool:
            req = urllib.request.Request(
                f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.token}"}
            )
            with urllib.request.urlopen(req, timeout=3, context=ctx) as resp:
                return bool(resp.status == 200)

        self._wait(proc, "kube-apiserver /readyz", probe, deadline)

    def _common_component_args(self) -> list[str]:
        kc = str(self.kubeconfig)
        return [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--port=0",
            f"--v={self.verbosity}",
        ]

    def _start_controller_manager(self) -> None:
        assert self._pki is not None
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                *self._common_component_args(),
                f"--secure-port={self.controller_manager_port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                f"--controllers={','.join(self.controllers)}",
                f"--service-account-private-key-file={self._pki.sa_key}",
                f"--root-ca-file={self._pki.ca_cert}",
                "--use-service-account-credentials=false",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
            ],
        )

    def _start_scheduler(self) -> None:
        self._spawn(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                *self._common_component_args(),
                f"--secure-port={self.scheduler_port}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
            ],
        )

    def _wait_component_healthz(self, name: str, port: int, deadline: float) -> None:
        proc = next(p for p in self._procs if p.name == name)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # self-signed serving cert of the component

        def probe() -> bool:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/healthz", timeout=3, context=ctx
            ) as resp:
                return bool(resp.status == 200)

        self._wait(proc, f"{name} /healthz", probe, deadline)

    def _wait(self, proc: _Proc, what: str, probe: Callable[[], bool], deadline: float) -> None:
        last_err = "not probed yet"
        while True:
            if not proc.alive():
                raise ControlPlaneError(
                    f"{proc.name} exited while waiting for {what}; log {proc.log_path}:\n"
                    f"{proc.log_tail()}"
                )
            try:
                if probe():
                    return
                last_err = "probe returned false"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last_err = repr(exc)
            if time.monotonic() >= deadline:
                raise ControlPlaneError(
                    f"timed out waiting for {what} (last error: {last_err}); "
                    f"log {proc.log_path}:\n{proc.log_tail()}"
                )
            time.sleep(0.1)
