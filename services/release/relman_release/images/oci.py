"""OCI and Docker image formats as values: media types, descriptors, manifests.

Manifests and configs are written as canonical JSON (sorted keys, no spaces, ASCII with
``\\u`` escapes), so the same content always has the same bytes and so the same digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from relman_common.errors import InvalidArgument

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEXES = (OCI_INDEX, DOCKER_LIST)

# The annotation an OCI image layout's index names its images with.
REF_NAME = "org.opencontainers.image.ref.name"
# Every image relman builds is dated here (ko does the same): the date is not an input.
EPOCH = "1970-01-01T00:00:00Z"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True)
class Manifest:
    """A manifest (or index) as stored: its exact bytes, media type and digest."""

    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.data)
        except ValueError as err:
            raise InvalidArgument(f"a manifest is not valid JSON: {err}") from None
        if not isinstance(value, dict):
            raise InvalidArgument("a manifest is not a JSON object")
        return value

    @classmethod
    def of(cls, value: dict[str, Any]) -> Manifest:
        return cls(canonical_json(value), str(value.get("mediaType", OCI_MANIFEST)))


def descriptor(media_type: str, data_or_digest: bytes | str, size: int = -1) -> dict[str, Any]:
    """A descriptor of bytes (``data_or_digest`` the bytes) or of a blob by digest and size."""
    if isinstance(data_or_digest, bytes):
        return {
            "mediaType": media_type,
            "digest": sha256_digest(data_or_digest),
            "size": len(data_or_digest),
        }
    return {"mediaType": media_type, "digest": data_or_digest, "size": size}


def image_manifest(
    config: dict[str, Any], layers: list[dict[str, Any]], annotations: dict[str, str]
) -> dict[str, Any]:
    """An image manifest of ``config`` (a descriptor) and ``layers``; Docker's format when the
    config is Docker's (a base pulled in Docker's format keeps it), else OCI's."""
    docker = config["mediaType"] == DOCKER_CONFIG
    value: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }
    if annotations and not docker:
        value["annotations"] = annotations
    return value


def pick_platform(index: dict[str, Any], os: str, architecture: str) -> dict[str, Any]:
    """From an index (manifest list), the descriptor of the image for ``os/architecture``."""
    for entry in index.get("manifests", []):
        platform = entry.get("platform", {})
        if platform.get("os") == os and platform.get("architecture") == architecture:
            return dict(entry)
    have = sorted(
        f"{m.get('platform', {}).get('os')}/{m.get('platform', {}).get('architecture')}"
        for m in index.get("manifests", [])
    )
    raise InvalidArgument(
        f"the base image has no {os}/{architecture} image (it has: {', '.join(have) or 'none'})"
    )
