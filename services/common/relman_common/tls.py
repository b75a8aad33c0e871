"""TLS for the services and their clients (cert/key, optional client CA for mutual TLS)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from relman_common.settings import TLS_CA, TLS_CLIENT_CERT, TLS_CLIENT_KEY
from relman_common.vocabulary import MESSAGE_SIZE_OPTIONS


@dataclass(frozen=True)
class ServerTls:
    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        pair = [(self.key.read_bytes(), self.cert.read_bytes())]
        if self.client_ca is None:
            return grpc.ssl_server_credentials(pair)
        return grpc.ssl_server_credentials(
            pair, root_certificates=self.client_ca.read_bytes(), require_client_auth=True
        )


def server_tls(cert: str, key: str, client_ca: str = "") -> ServerTls | None:
    """A ServerTls when a cert and key are given, None for plaintext; half a pair is an error."""
    if not cert and not key:
        return None
    if not (cert and key):
        raise ValueError("TLS needs both a certificate (--tls-cert) and a key (--tls-key)")
    return ServerTls(Path(cert), Path(key), Path(client_ca) if client_ca else None)


@dataclass(frozen=True)
class ClientTls:
    """How a client reaches a TLS service: CA to trust, optional client cert for mutual TLS."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes() if self.ca else None,
            private_key=self.key.read_bytes() if self.key else None,
            certificate_chain=self.cert.read_bytes() if self.cert else None,
        )


def client_tls(ca: str = "", cert: str = "", key: str = "") -> ClientTls | None:
    """A ClientTls when any setting is given, None for plaintext. A client certificate needs
    its key (and the reverse); every named file must exist.

    >>> client_tls() is None
    True
    >>> client_tls(cert="client.pem")
    Traceback (most recent call last):
    ...
    ValueError: a TLS client certificate needs its key (and the key its certificate)
    """
    if not (ca or cert or key):
        return None
    if bool(cert) != bool(key):
        raise ValueError("a TLS client certificate needs its key (and the key its certificate)")
    tls = ClientTls(
        Path(ca) if ca else None, Path(cert) if cert else None, Path(key) if key else None
    )
    for path in (tls.ca, tls.cert, tls.key):
        if path is not None and not path.is_file():
            raise ValueError(f"TLS file not found: {path}")
    return tls


def client_tls_from_env() -> ClientTls | None:
    """``RELMAN_TLS_CA`` (and for mutual TLS ``RELMAN_TLS_CLIENT_CERT``/``_KEY``), or None."""
    return client_tls(TLS_CA.value(), TLS_CLIENT_CERT.value(), TLS_CLIENT_KEY.value())


def aio_channel(
    addr: str, tls: ClientTls | None = None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel to ``addr``: TLS when ``tls`` is given, plaintext otherwise; the
    project's message size limits always apply."""
    opts = [*MESSAGE_SIZE_OPTIONS, *options]
    if tls is None:
        return grpc.aio.insecure_channel(addr, options=opts)
    return grpc.aio.secure_channel(addr, tls.credentials(), options=opts)


def channel(
    addr: str, tls: ClientTls | None = None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A blocking channel to ``addr``: TLS when ``tls`` is given; the project's message size
    limits always apply."""
    opts = [*MESSAGE_SIZE_OPTIONS, *options]
    if tls is None:
        return grpc.insecure_channel(addr, options=opts)
    return grpc.secure_channel(addr, tls.credentials(), options=opts)
