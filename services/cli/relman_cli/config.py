"""Where the services are: a named rack from the user's config file, or the environment.

``~/.config/relman/racks.yml`` (``$XDG_CONFIG_HOME`` respected) names pairs of endpoints::

    racks:
      prod:
        release: release.prod.example:50051     # or a list: [r1:50051, r2:50051]
        deployer: [d1.prod.example:50052, d2.prod.example:50052]
        token: rmt_...        # optional; $RELMAN_TOKEN wins over it
        tls_ca: /path/ca.pem  # optional: TLS, trusting this CA (else $RELMAN_TLS_CA)
        tls_client_cert: ...  # optional: mutual TLS (else $RELMAN_TLS_CLIENT_CERT / _KEY)
        tls_client_key: ...

Without a rack, ``RELMAN_RELEASE_ADDR`` / ``RELMAN_DEPLOYER_ADDR`` (each one address, or
several comma-separated) or the local defaults apply. Calls go to one address of a service and
move on to the next while it is UNAVAILABLE, for up to ``RELMAN_RETRY_SECONDS``; a DNS name
with several addresses is tried address by address by gRPC itself.

The token sent is ``$RELMAN_TOKEN``, else the rack's ``token``, else — without a rack, for the
services on this machine — the local admin token ``$RELMAN_DATA_DIR/admin.token`` (default
``./.relman/admin.token``), which ``make run`` creates: so the CLI needs no setup next to it.
The local admin token is never sent to a named rack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from relman_common.settings import (
    DATA_DIR,
    DEPLOYER_ADDR,
    RELEASE_ADDR,
    RETRY_SECONDS,
    TLS_CA,
    TLS_CLIENT_CERT,
    TLS_CLIENT_KEY,
    TOKEN,
)

from relman_cli.errors import CliError

ADMIN_TOKEN_FILE = "admin.token"


@dataclass(frozen=True)
class Endpoints:
    release: str
    deployer: str
    rack: str = ""
    # API token sent as ``authorization: Bearer ...`` (the rack's ``token``, else
    # ``$RELMAN_TOKEN``); empty sends none, which services without authentication accept.
    token: str = field(default="", repr=False)
    # TLS: the CA to trust and, for mutual TLS, a client certificate and key (PEM paths);
    # all empty means plaintext.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    # How long calls are retried while a service is UNAVAILABLE (RELMAN_RETRY_SECONDS).
    retry_seconds: float = RETRY_SECONDS.default

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca or self.tls_cert or self.tls_key)


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "relman"


def racks_file(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / "racks.yml"


def local_admin_token_file(environ: Mapping[str, str] | None = None) -> Path:
    """``$RELMAN_DATA_DIR/admin.token`` (default ``./.relman/admin.token``)."""
    return DATA_DIR.value(environ) / ADMIN_TOKEN_FILE


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except OSError as err:
        raise CliError(f"cannot read the token file {path}: {err}") from err


def resolve(rack: str | None, environ: Mapping[str, str] | None = None) -> Endpoints:
    """The endpoints to use: the rack's when one is named, else the environment's."""
    environ = os.environ if environ is None else environ
    token = TOKEN.value(environ)
    tls = {
        "tls_ca": TLS_CA.value(environ),
        "tls_cert": TLS_CLIENT_CERT.value(environ),
        "tls_key": TLS_CLIENT_KEY.value(environ),
    }
    retry = _retry_seconds(environ)
    if rack:
        found = replace(_rack_endpoints(rack, racks_file(environ)), retry_seconds=retry)
        if not found.tls:
            found = replace(
                found, tls_ca=tls["tls_ca"], tls_cert=tls["tls_cert"], tls_key=tls["tls_key"]
            )
        return replace(found, token=token) if token else found
    return Endpoints(
        release=RELEASE_ADDR.value(environ),
        deployer=DEPLOYER_ADDR.value(environ),
        token=token or _read_token(local_admin_token_file(environ)),
        retry_seconds=retry,
        **tls,
    )


def _retry_seconds(environ: Mapping[str, str]) -> float:
    try:
        value = RETRY_SECONDS.value(environ)
    except ValueError as err:
        raise CliError(str(err)) from None
    if not 0 <= value <= 24 * 3600:
        raise CliError(f"invalid {RETRY_SECONDS.env} {value}: use 0 to 86400 seconds")
    return value


def _addresses(path: Path, rack: str, key: str, value: Any) -> str:
    """A rack's ``release`` or ``deployer``: one address, or a list of them (kept as one
    comma-separated string, which the clients split)."""
    items = value if isinstance(value, list) else [value] if value else []
    addrs = [str(item).strip() for item in items if item is not None and str(item).strip()]
    if not addrs or any("," in a or " " in a for a in addrs):
        raise CliError(
            f"{path}: rack {rack}: '{key}' must be an address host:port or a list of them"
        )
    return ",".join(addrs)


def load_racks(path: Path) -> dict[str, Endpoints]:
    """Every rack in ``path``; a missing file holds none."""
    if not path.exists():
        return {}
    import yaml  # only commands that name a rack pay for it

    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise CliError(f"cannot read {path}: {err}") from err
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise CliError(f"{path}: expected a mapping with a 'racks' key")
    racks = doc.get("racks") or {}
    if not isinstance(racks, dict):
        raise CliError(f"{path}: 'racks' must be a mapping of rack name to endpoints")
    result: dict[str, Endpoints] = {}
    for name, entry in racks.items():
        if not isinstance(entry, dict):
            raise CliError(f"{path}: rack {name} must have 'release' and 'deployer' addresses")
        if not entry.get("release") or not entry.get("deployer"):
            raise CliError(f"{path}: rack {name} must have 'release' and 'deployer' addresses")
        release = _addresses(path, str(name), "release", entry.get("release"))
        deployer = _addresses(path, str(name), "deployer", entry.get("deployer"))
        token = str(entry.get("token") or "")
        result[str(name)] = Endpoints(
            release,
            deployer,
            rack=str(name),
            token=token,
            tls_ca=str(entry.get("tls_ca") or ""),
            tls_cert=str(entry.get("tls_client_cert") or ""),
            tls_key=str(entry.get("tls_client_key") or ""),
        )
    return result


def _rack_endpoints(rack: str, path: Path) -> Endpoints:
    racks = load_racks(path)
    if rack not in racks:
        known = ", ".join(sorted(racks)) or "none"
        raise CliError(f"rack not found: {rack} (racks in {path}: {known})")
    return racks[rack]
