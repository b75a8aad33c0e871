"""Export a build as a .tgz, and import one (SPEC 7).

The archive is an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``:
any OCI tool reads it once unpacked) plus ``relman.json``: the manifest text, description,
git sha, the app and build it came from, and per service the image reference and digest
(digest "" for a service whose ``image:`` is used as is; only built images are in the
layout, tagged ``<app>:<service>``). Export writes the images into a layout in a temporary
directory, then streams it as tar.gz; import spools the upload to a temporary file, checks
and unpacks it like a source archive, and pushes the images into this rack's store (registry
or layout) with the same digests.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_common.lifecycle import BuildStatus
from relman_common.manifest import parse_manifest
from relman_common.vocabulary import BUILD, MAX_MANIFEST_BYTES, new_id, quote, validate_app_name

from relman_release.app.builds import import_build
from relman_release.app.lookups import app_named
from relman_release.app.results import ImportedBuild
from relman_release.builds.archive import Limits, check_archive, check_size
from relman_release.builds.contents import unpack
from relman_release.builds.workshop import Workshop
from relman_release.domain.model import Build
from relman_release.images.layout import LayoutStore
from relman_release.images.oci import INDEXES
from relman_release.images.reference import DIGEST, parse_image
from relman_release.images.store import ImageStore, copy_blob
from relman_release.ports import UnitOfWork

FACTS_FILE = "relman.json"
FORMAT = 1
_CHUNK = 1024 * 1024


def copy_image(
    source: ImageStore, source_repo: str, digest: str, target: ImageStore, repo: str, tag: str
) -> None:
    """The image (or index, with its images) ``digest`` of ``source`` into ``target``, under
    ``tag`` ("": by digest only); its bytes, and so its digest, unchanged."""
    manifest = source.get_manifest(source_repo, digest)
    value = manifest.json
    if manifest.media_type in INDEXES:
        for child in value.get("manifests", []):
            copy_image(source, source_repo, child["digest"], target, repo, "")
    else:
        for blob in [value["config"], *value.get("layers", [])]:
            copy_blob(source, source_repo, target, repo, blob["digest"])
    target.put_manifest(repo, tag or digest, manifest)


class _Emitter(io.RawIOBase):
    """A file that hands what is written to ``emit`` in chunks of about 1 MiB."""

    def __init__(self, emit: Callable[[bytes], None]) -> None:
        super().__init__()
        self._emit = emit
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        if len(self._buffer) >= _CHUNK:
            self._emit(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def close(self) -> None:
        if self._buffer:
            self._emit(bytes(self._buffer))
            self._buffer.clear()
        super().close()


def _add(tar: tarfile.TarFile, name: str, path: Path | None, data: bytes = b"") -> None:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    if path is None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        return
    info.size = path.stat().st_size
    with path.open("rb") as handle:
        tar.addfile(info, handle)


def export_build(
    build: Build, store: ImageStore, work_dir: Path, emit: Callable[[bytes], None]
) -> None:
    """Streams ``build`` as a .tgz through ``emit``."""
    if build.status is not BuildStatus.COMPLETE:
        raise FailedPrecondition(
            f"build {build.id} is {build.status.value}: only complete builds can be exported"
        )
    built = {s.name for s in parse_manifest(build.manifest).services if s.build is not None}
    directory = Path(tempfile.mkdtemp(prefix=f"export-{build.id}-", dir=work_dir))
    try:
        layout = LayoutStore(directory)
        images: dict[str, dict[str, str]] = {}
        for service, reference in sorted(build.images.items()):
            ref = parse_image(reference)
            if service in built and ref.digest:
                copy_image(store, ref.repository, ref.digest, layout, build.app, service)
            images[service] = {
                "reference": reference,
                "digest": ref.digest if service in built else "",
            }
        facts = {
            "format": FORMAT,
            "app": build.app,
            "build": build.id,
            "manifest": build.manifest,
            "description": build.description,
            "git_sha": build.git_sha,
            "images": images,
        }
        with _Emitter(emit) as out, tarfile.open(fileobj=out, mode="w|gz") as tar:
            _add(tar, FACTS_FILE, None, json.dumps(facts, indent=2, sort_keys=True).encode())
            _add(tar, "oci-layout", directory / "oci-layout")
            _add(tar, "index.json", directory / "index.json")
            for blob in sorted((directory / "blobs" / "sha256").iterdir()):
                if not blob.name.startswith("."):
                    _add(tar, f"blobs/sha256/{blob.name}", blob)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Exported:
    """An unpacked export: its ``relman.json`` facts and its layout, in a temporary directory
    removed by :meth:`close`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.layout = LayoutStore(directory / "x")
        path = directory / "x" / FACTS_FILE
        if not path.is_file() or path.stat().st_size > 2 * MAX_MANIFEST_BYTES:
            raise InvalidArgument(f"not a relman build export: no {FACTS_FILE} (or too large)")
        try:
            facts = json.loads(path.read_bytes())
            if facts.get("format") != FORMAT:
                raise InvalidArgument(
                    f"{FACTS_FILE} says format {quote(str(facts.get('format')))}: this "
                    f"service reads format {FORMAT}"
                )
            self.app = str(facts["app"])
            self.manifest = str(facts["manifest"])
            self.description = str(facts.get("description", ""))
            self.git_sha = str(facts.get("git_sha", ""))
            self.images = {str(s): dict(i) for s, i in dict(facts["images"]).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise InvalidArgument(f"{FACTS_FILE} of the export is not readable: {err}") from None

    def push(
        self, target: ImageStore, repository: str, target_host: str, build_id: str
    ) -> dict[str, str]:
        """Copies the export's images into ``target`` as ``repository:<service>.<build_id>``;
        the image reference of every service (built ones by digest)."""
        images: dict[str, str] = {}
        for service, image in sorted(self.images.items()):
            digest = str(image.get("digest", ""))
            if not digest:
                images[service] = str(image.get("reference", ""))
                continue
            if not DIGEST.fullmatch(digest):
                raise InvalidArgument(f"{FACTS_FILE}: invalid digest {quote(digest)}")
            copy_image(self.layout, self.app, digest, target, repository, f"{service}.{build_id}")
            name = f"{target_host}/{repository}" if target_host else repository
            images[service] = f"{name}@{digest}"
        return images

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def receive_export(chunks: Iterator[bytes], limits: Limits, work_dir: Path) -> Exported:
    """Spools an uploaded export to a temporary file, checks it as a source archive is
    checked (size, entries, paths, links) and unpacks it."""
    directory = Path(tempfile.mkdtemp(prefix="import-", dir=work_dir))
    try:
        archive = directory / "export.tgz"
        received = 0
        with archive.open("w+b") as out:
            for chunk in chunks:
                received += len(chunk)
                check_size(received, limits)
                out.write(chunk)
            out.seek(0)
            check_archive(out, limits)  # type: ignore[arg-type]
            out.seek(0)
            unpack(out, directory / "x")  # type: ignore[arg-type]
        os.unlink(archive)
        return Exported(directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def import_export(
    uow: UnitOfWork,
    workshop: Workshop,
    app_name: str,
    chunks: Iterator[bytes],
    actor: str,
) -> ImportedBuild:
    """A new build (complete) and release in ``app_name`` from an uploaded export, its images
    pushed into this rack's store first."""
    validate_app_name(app_name)
    with uow.read() as repo:
        app_named(repo, app_name)
    exported = receive_export(chunks, workshop.limits, workshop.work_dir)
    try:
        parse_manifest(exported.manifest)
        build_id = new_id(BUILD)
        registry = workshop.registry
        repository = registry.repository(app_name) if registry else app_name
        images = exported.push(workshop.images, repository, workshop.images.host, build_id)
    finally:
        exported.close()
    return import_build(
        uow,
        app_name,
        exported.manifest,
        images,
        exported.description,
        exported.git_sha,
        actor,
        build_id=build_id,
    )
