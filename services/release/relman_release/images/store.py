"""Where images go: one small interface, a registry or an OCI image layout behind it.

A store holds blobs (layers, configs) and manifests, in repositories (``relman/myapp``). The
registry (:mod:`.registry`) speaks the OCI distribution API; the layout
(:mod:`.layout`) is a directory under the data dir, used when ``RELMAN_REGISTRY`` is unset.
Manifests are named by a tag or by their digest; deleting by digest is what retention uses.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from relman_common.errors import ResourceExhausted

from relman_release.images.oci import Manifest
from relman_release.images.reference import Registry, parse_registry

# Configs and manifests are read whole; nothing that large is either.
MAX_JSON_BLOB = 16 * 1024 * 1024
# Blobs copied between stores go through a temporary file past this size.
_SPOOL_BYTES = 8 * 1024 * 1024


class ImageStore(Protocol):
    """Blobs and manifests, by repository. Safe to use from several threads at once."""

    # The registry host a name must start with to be in this store; "" for the layout.
    host: str

    def describe(self) -> str:
        """The store in words, for messages: ``registry 127.0.0.1:5000``."""
        ...

    def has_blob(self, repository: str, digest: str) -> bool: ...

    def open_blob(self, repository: str, digest: str) -> Iterator[bytes]:
        """The blob's bytes in chunks; the digest is checked when the last one is read."""
        ...

    def put_blob(self, repository: str, digest: str, source: BinaryIO) -> None:
        """Store the bytes of ``source`` (read to its end) as the blob ``digest``; bytes that
        do not hash to it are refused and nothing is kept."""
        ...

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> bool:
        """Make a blob of ``source_repository`` (same store) part of ``repository`` without
        copying it; False when the store cannot (then copy it)."""
        ...

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest tagged ``reference``, or with that digest (NotFound if none)."""
        ...

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        """Store ``manifest`` under a tag, or under its own digest. Its blobs must be there."""
        ...

    def delete_manifest(self, repository: str, reference: str) -> None:
        """Delete the manifest with this digest (or the one this tag names): every tag of it
        goes too. NotFound if there is none."""
        ...


def read_blob(store: ImageStore, repository: str, digest: str) -> bytes:
    """A small blob (a config) whole."""
    data = bytearray()
    for chunk in store.open_blob(repository, digest):
        data += chunk
        if len(data) > MAX_JSON_BLOB:
            raise ResourceExhausted(f"blob {digest} is larger than {MAX_JSON_BLOB} bytes")
    return bytes(data)


def copy_blob(
    source: ImageStore, source_repository: str, target: ImageStore, repository: str, digest: str
) -> str:
    """Make the blob ``digest`` of ``source`` present in ``target``; says how, in a word:
    ``exists``, ``mounted`` or ``copied``."""
    if target.has_blob(repository, digest):
        return "exists"
    if source is target and target.mount_blob(repository, digest, source_repository):
        return "mounted"
    with tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as spool:
        for chunk in source.open_blob(source_repository, digest):
            spool.write(chunk)
        spool.seek(0)
        target.put_blob(repository, digest, spool)  # type: ignore[arg-type]
    return "copied"


def open_store(
    registry: str | Registry | None,
    data_dir: Path | None = None,
    username: str = "",
    password: str = "",
) -> ImageStore:
    """The registry named by ``registry`` (``RELMAN_REGISTRY``), or when it is unset the OCI
    image layout at ``<data_dir>/images``."""
    if registry:
        from relman_release.images.registry import RegistryStore

        parsed = parse_registry(registry) if isinstance(registry, str) else registry
        return RegistryStore(parsed, username=username, password=password)
    from relman_release.images.layout import LayoutStore

    if data_dir is None:
        raise ValueError("an OCI layout store needs the data dir")
    return LayoutStore(Path(data_dir) / "images")
