"""The kubelet's log endpoint, for the emulator's pods: ``GET /containerLogs/<namespace>/<pod>/
<container>?tailLines=N&previous=true`` over HTTPS on loopback, which kube-apiserver calls for
``kubectl logs`` (``pods/log``) at the node's InternalIP and kubelet port.

No process runs, so a container's log is what its environment variable
``RELMAN_KUBELET_LOG`` says the process writes (one line per line of the value; every run
writes it again). A container that has not started answers as the kubelet does (400, "is
waiting to start"), and so does ``previous=true`` for a container that never restarted.
The serving certificate is self-signed: kube-apiserver without
``--kubelet-certificate-authority`` does not verify it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOG_ENV = "RELMAN_KUBELET_LOG"

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


def _self_signed() -> tuple[bytes, bytes]:
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
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class LogServer:
    """Serves ``source``'s logs on ``127.0.0.1:<port>`` (a free one) until :meth:`stop`."""

    def __init__(self, source: LogSource, host: str = "127.0.0.1") -> None:
        self._source = source
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server.answer(self.path)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        cert, key = _self_signed()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="relman-kubelet-") as tmp:
            cert_file, key_file = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for path, data in ((cert_file, cert), (key_file, key)):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                    f.write(data)
            context.load_cert_chain(cert_file, key_file)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="relman-kubelet-logs", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, path: str) -> tuple[int, str]:
        url = urlparse(path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            return 404, "404 page not found\n"
        query = parse_qs(url.query)
        previous = (query.get("previous") or ["false"])[0] == "true"
        lines: int | None = None
        if query.get("tailLines"):
            try:
                lines = int(query["tailLines"][0])
            except ValueError:
                return 400, "tailLines: not a number\n"
        status, body = self._source(parts[1], parts[2], parts[3], previous)
        return status, tail(body, lines) if status == 200 else body
