"""Where the services are: a named rack from the user's config file, or the environment.

``~/.config/relman/racks.yml`` (``$XDG_CONFIG_HOME`` respected) names pairs of endpoints::

    racks:
      prod:
        release: release.prod.example:50051
        deployer: deployer.prod.example:50052
        token: rmt_...        # optional; else $RELMAN_TOKEN

Without a rack, ``RELMAN_RELEASE_ADDR`` / ``RELMAN_DEPLOYER_ADDR`` or the local defaults apply.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from relman_cli.errors import CliError

DEFAULT_RELEASE_ADDR = "127.0.0.1:50051"
DEFAULT_DEPLOYER_ADDR = "127.0.0.1:50052"


@dataclass(frozen=True)
class Endpoints:
    release: str
    deployer: str
    rack: str = ""
    # API token sent as ``authorization: Bearer ...`` (the rack's ``token``, else
    # ``$RELMAN_TOKEN``); empty sends none, which services without authentication accept.
    token: str = field(default="", repr=False)


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "relman"


def racks_file(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / "racks.yml"


def resolve(rack: str | None, environ: Mapping[str, str] | None = None) -> Endpoints:
    """The endpoints to use: the rack's when one is named, else the environment's."""
    environ = os.environ if environ is None else environ
    token = environ.get("RELMAN_TOKEN", "")
    if rack:
        found = _rack_endpoints(rack, racks_file(environ))
        return found if found.token else replace(found, token=token)
    return Endpoints(
        release=environ.get("RELMAN_RELEASE_ADDR") or DEFAULT_RELEASE_ADDR,
        deployer=environ.get("RELMAN_DEPLOYER_ADDR") or DEFAULT_DEPLOYER_ADDR,
        token=token,
    )


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
        release = str(entry.get("release") or "")
        deployer = str(entry.get("deployer") or "")
        if not release or not deployer:
            raise CliError(f"{path}: rack {name} must have 'release' and 'deployer' addresses")
        token = str(entry.get("token") or "")
        result[str(name)] = Endpoints(release, deployer, rack=str(name), token=token)
    return result


def _rack_endpoints(rack: str, path: Path) -> Endpoints:
    racks = load_racks(path)
    if rack not in racks:
        known = ", ".join(sorted(racks)) or "none"
        raise CliError(f"rack not found: {rack} (racks in {path}: {known})")
    return racks[rack]
