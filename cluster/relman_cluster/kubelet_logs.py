"""The kubelet's log endpoint, for the kubelet emulator: ``kubectl logs`` (the API server's
``pods/log``) reaches a kubelet at its node's address and ``kubeletEndpoint`` port, over HTTPS,
at ``/containerLogs/<namespace>/<pod>/<container>``; with ``follow=true`` the answer streams
until the container ends.

The emulator writes what its containers "print" into a :class:`LogStore`;
:class:`KubeletLogServer` serves it on 127.0.0.1 with a self-signed certificate (the API server
does not verify a kubelet's certificate unless ``--kubelet-certificate-authority`` is given).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger("relman_cluster.kubelet")

# (namespace, pod, container, previous) -> (HTTP status, body)
LogSource = Callable[[str, str, str, bool], tuple[int, str]]


def tail(text: str, lines: int | None) -> str:
    """The last ``lines`` lines of ``text`` (all when None), newline-terminated.

    >>> tail("a\\nb\\nc", 2), tail("", 3), tail("x", None)
    ('b\\nc\\n', '', 'x\\n')
    """
    kept = text.splitlines()
    if lines is not None:
        kept = kept[-lines:] if lines > 0 else []
    return "".join(f"{line}\n" for line in kept)


Key = tuple[str, str, str]  # namespace, pod, container


@dataclass
class _Log:
    lines: list[str] = field(default_factory=list)
    ended: bool = False


class LogStore:
    """What each container printed, and whether it has ended; thread-safe."""

    def __init__(self) -> None:
        self._logs: dict[Key, _Log] = {}
        self._changed = threading.Condition()
        self.closed = False

    def write(self, key: Key, lines: list[str], *, end: bool = False) -> None:
        with self._changed:
            entry = self._logs.setdefault(key, _Log())
            entry.lines.extend(lines)
            entry.ended = entry.ended or end
            self._changed.notify_all()

    def forget(self, namespace: str, pod: str) -> None:
        with self._changed:
            for key in [k for k in self._logs if k[:2] == (namespace, pod)]:
                self._logs[key].ended = True
                del self._logs[key]
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def known(self, key: Key) -> bool:
        with self._changed:
            return key in self._logs

    def read(self, key: Key, start: int, *, wait: bool) -> tuple[list[str], bool]:
        """Lines from ``start`` on and whether no more will come; with ``wait``, block until
        there is something new (or the log ends, or the store closes)."""
        with self._changed:
            while True:
                entry = self._logs.get(key)
                if entry is None or self.closed:
                    return [], True
                if len(entry.lines) > start or entry.ended or not wait:
                    return entry.lines[start:], entry.ended
                self._changed.wait()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, written into ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relman-kubelet-emulator")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class KubeletLogServer:
    """``GET /containerLogs/<ns>/<pod>/<container>[?follow=true]`` over HTTPS on 127.0.0.1."""

    def __init__(self, store: LogStore, fallback: LogSource | None = None) -> None:
        """``fallback`` answers for containers ``store`` does not know (one answer, no
        follow: what an emulated container's env says it prints, see :mod:`.logserver`)."""
        self.store = store
        handler = _handler(store, fallback)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        with tempfile.TemporaryDirectory(prefix="relman-kubelet-") as tmp:
            cert, key = self_signed(Path(tmp))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="relman-kubelet-logs", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.store.close()  # ends every follow
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def answer(source: LogSource, key: Key, query: dict[str, list[str]]) -> tuple[int, str]:
    """``source``'s answer for ``key``, cut to ``tailLines`` as the kubelet cuts it."""
    previous = (query.get("previous") or ["false"])[0] == "true"
    lines: int | None = None
    if query.get("tailLines"):
        try:
            lines = int(query["tailLines"][0])
        except ValueError:
            return 400, "tailLines: not a number\n"
    status, body = source(*key, previous)
    return status, tail(body, lines) if status == 200 else body


def _handler(store: LogStore, fallback: LogSource | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = [unquote(p) for p in url.path.split("/") if p]
            if len(parts) != 4 or parts[0] != "containerLogs":
                self.send_error(404, "not found")
                return
            key: Key = (parts[1], parts[2], parts[3])
            query = parse_qs(url.query)
            if not store.known(key):
                if fallback is None:
                    self.send_error(404, f"no log of container {key[2]} in pod {key[0]}/{key[1]}")
                else:
                    self._answer(*answer(fallback, key, query))
                return
            follow = query.get("follow", ["false"])[0] == "true"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            start = 0
            with contextlib.suppress(OSError):
                while True:
                    lines, ended = store.read(key, start, wait=follow)
                    start += len(lines)
                    if lines:
                        self.wfile.write("".join(f"{line}\n" for line in lines).encode())
                        self.wfile.flush()
                    if ended or not follow:
                        return

        def _answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("kubelet logs: " + format, *args)

    return Handler
