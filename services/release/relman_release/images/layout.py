"""An OCI image layout on disk: the store used when no registry is configured.

``<root>/oci-layout``, ``<root>/index.json`` and ``<root>/blobs/sha256/<hex>`` as the OCI
image-layout spec has them, so any OCI tool (skopeo ``oci:``, crane, ``ctr import``) can
read it. Each manifest in ``index.json`` carries the annotation
``org.opencontainers.image.ref.name`` = ``<repository>:<tag>`` when it is tagged and
``dev.relman.repository`` = ``<repository>`` always; all repositories share the blobs.

Blobs are written to a temporary file and renamed into place once their digest is checked;
``index.json`` is rewritten whole (rename) under an exclusive lock, so concurrent builds and a
reader never see half a file. Deleting a manifest removes its index entries, the manifest blob
when nothing else names it, and blobs that no manifest uses any more and that are older than
:data:`KEEP_UNUSED_SECONDS` (a build in flight writes its blobs before its manifest).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from relman_common.errors import InvalidArgument, NotFound

from relman_release.images.oci import (
    INDEXES,
    OCI_INDEX,
    REF_NAME,
    Manifest,
    canonical_json,
)
from relman_release.images.reference import DIGEST

REPOSITORY = "dev.relman.repository"
KEEP_UNUSED_SECONDS = 3600
_CHUNK = 1024 * 1024


class LayoutStore:
    """An :class:`~relman_release.images.store.ImageStore` in an OCI image layout at ``root``."""

    host = ""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._blobs.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if not (self.root / "oci-layout").exists():
                layout = canonical_json({"imageLayoutVersion": "1.0.0"})
                self._write(self.root / "oci-layout", layout)
            if not (self.root / "index.json").exists():
                self._write_index([])

    def describe(self) -> str:
        return f"the OCI image layout at {self.root}"

    # --- blobs ----------------------------------------------------------------------------

    def _blob(self, digest: str) -> Path:
        if not DIGEST.fullmatch(digest):
            raise InvalidArgument(f"not a sha256 digest: {digest[:80]!r}")
        return self._blobs / digest.removeprefix("sha256:")

    def has_blob(self, repository: str, digest: str) -> bool:
        return self._blob(digest).is_file()

    def open_blob(self, repository: str, digest: str) -> Iterator[bytes]:
        path = self._blob(digest)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in {self.describe()}") from None
        return _chunks(handle, digest)

    def put_blob(self, repository: str, digest: str, source: BinaryIO) -> None:
        path = self._blob(digest)
        if path.is_file():
            source.read()
            return
        hasher = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self._blobs, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            got = "sha256:" + hasher.hexdigest()
            if got != digest:
                raise InvalidArgument(f"blob bytes hash to {got}, not {digest}: nothing stored")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def mount_blob(self, repository: str, digest: str, source_repository: str) -> bool:
        return self.has_blob(repository, digest)

    # --- manifests ------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        for entry in self._read_index():
            if _matches(entry, repository, reference):
                path = self._blob(entry["digest"])
                return Manifest(path.read_bytes(), entry["mediaType"])
        raise NotFound(f"image {repository}:{reference} is not in {self.describe()}")

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        digest = manifest.digest
        tagged = not DIGEST.fullmatch(reference)
        if not tagged and reference != digest:
            raise InvalidArgument(f"manifest bytes hash to {digest}, not {reference}")
        self._check_blobs(manifest)
        annotations = {REPOSITORY: repository}
        if tagged:
            annotations[REF_NAME] = f"{repository}:{reference}"
        entry = {
            "mediaType": manifest.media_type,
            "digest": digest,
            "size": len(manifest.data),
            "annotations": annotations,
        }
        with self._locked():
            self._write(self._blob(digest), manifest.data)
            entries = self._read_index()
            if not tagged and any(_matches(e, repository, digest) for e in entries):
                return
            # A tag names one manifest: it moves; an untagged entry of the digest is redundant.
            entries = [
                e
                for e in entries
                if not (tagged and _matches(e, repository, reference))
                and not (_matches(e, repository, digest) and REF_NAME not in e["annotations"])
            ]
            self._write_index([*entries, entry])

    def delete_manifest(self, repository: str, reference: str) -> None:
        with self._locked():
            entries = self._read_index()
            named = {e["digest"] for e in entries if _matches(e, repository, reference)}
            if not named:
                raise NotFound(f"image {repository}:{reference} is not in {self.describe()}")
            kept = [
                e
                for e in entries
                if not (e["digest"] in named and e["annotations"].get(REPOSITORY) == repository)
            ]
            self._write_index(kept)
            self._sweep(kept, named)

    # --- internals ------------------------------------------------------------------------

    def _check_blobs(self, manifest: Manifest) -> None:
        value = manifest.json
        if manifest.media_type in INDEXES:
            wanted = [m["digest"] for m in value.get("manifests", [])]
        else:
            wanted = [value["config"]["digest"], *(layer["digest"] for layer in value["layers"])]
        missing = [d for d in wanted if not self._blob(d).is_file()]
        if missing:
            raise InvalidArgument(f"manifest names blobs not in the store: {', '.join(missing)}")

    def _used(self, entries: list[dict[str, Any]]) -> set[str]:
        used: set[str] = set()
        pending = [e["digest"] for e in entries]
        while pending:
            digest = pending.pop()
            if digest in used:
                continue
            used.add(digest)
            try:
                value = json.loads(self._blob(digest).read_bytes())
            except (OSError, ValueError):
                continue
            if "manifests" in value:
                pending += [m["digest"] for m in value["manifests"]]
            elif "layers" in value:
                used.add(value["config"]["digest"])
                used.update(layer["digest"] for layer in value["layers"])
        return used

    def _sweep(self, entries: list[dict[str, Any]], deleted: set[str]) -> None:
        """Remove blobs no kept manifest uses: the deleted manifests at once, others once they
        are older than KEEP_UNUSED_SECONDS (younger ones may belong to a build in flight)."""
        used = {d.removeprefix("sha256:") for d in self._used(entries)}
        now_deleted = {d.removeprefix("sha256:") for d in deleted}
        cutoff = time.time() - KEEP_UNUSED_SECONDS
        for path in self._blobs.iterdir():
            if path.name in used or path.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.name in now_deleted or path.stat().st_mtime < cutoff:
                    path.unlink()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_index(self) -> list[dict[str, Any]]:
        value = json.loads((self.root / "index.json").read_bytes())
        return list(value.get("manifests", []))

    def _write_index(self, entries: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        self._write(self.root / "index.json", canonical_json(index))

    def _write(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".write-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)


def _matches(entry: dict[str, Any], repository: str, reference: str) -> bool:
    annotations = entry.get("annotations", {})
    if annotations.get(REPOSITORY) != repository:
        return False
    if DIGEST.fullmatch(reference):
        return bool(entry.get("digest") == reference)
    return bool(annotations.get(REF_NAME) == f"{repository}:{reference}")


def _chunks(handle: BinaryIO, digest: str) -> Iterator[bytes]:
    hasher = hashlib.sha256()
    with handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
            yield chunk
    if "sha256:" + hasher.hexdigest() != digest:
        raise InvalidArgument(f"blob {digest} in the OCI layout is corrupt: its bytes differ")
