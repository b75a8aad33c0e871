"""The manifest (the convox.yml subset of SPEC 2): one parser and one immutable model for the
whole system. The Release service parses and validates; the Deployer reads the same model
from ``ServiceSpec`` messages and never parses YAML."""

from relman_common.manifest.model import (
    HTTP,
    HTTPS,
    BuildSpec,
    EnvSpec,
    Health,
    Manifest,
    Port,
    ReleaseCommand,
    Scale,
    Service,
)
from relman_common.manifest.parser import parse_manifest

__all__ = [
    "HTTP",
    "HTTPS",
    "BuildSpec",
    "EnvSpec",
    "Health",
    "Manifest",
    "Port",
    "ReleaseCommand",
    "Scale",
    "Service",
    "parse_manifest",
]
