"""A source directory on its way to the Release service: what the build needs from it, its
archive, and the upload (skipped when the server already holds that archive).

Prints ``Packaging source... OK`` and ``Uploading source... OK``, with a byte meter on stderr
while either takes long (see :mod:`relman_cli.meter`).
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click
from relman.v1 import build_pb2

from relman_cli import output
from relman_cli.commands._common import client
from relman_cli.errors import CliError
from relman_cli.meter import Meter

if TYPE_CHECKING:
    from relman_cli.packaging import Archive

DEFAULT_MANIFESTS = ("relman.yml", "convox.yml")
CHUNK_BYTES = 1024 * 1024  # the contract's largest chunk


@dataclass(frozen=True)
class Source:
    root: Path
    manifest: str  # its path inside root, "/"-separated
    # What the build needs whatever .dockerignore says: the manifest, each Dockerfile.
    needed: tuple[str, ...]


def find_manifest(root: Path, given: str | None) -> str:
    """The manifest's path inside ``root``: ``given`` (relative to ``root``), else the first
    of ``relman.yml`` and ``convox.yml`` there."""
    if given is None:
        for name in DEFAULT_MANIFESTS:
            if (root / name).is_file():
                return name
        names = " or ".join(DEFAULT_MANIFESTS)
        where = "here" if root == Path(".") else f"in {root}"
        raise CliError(f"no manifest {where}: give --manifest FILE or add {names}")
    path = Path(given)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(root.resolve())
        except ValueError:
            raise CliError(f"the manifest {given} is not inside {root}") from None
    inside = posixpath.normpath(path.as_posix())
    if inside == ".." or inside.startswith("../"):
        raise CliError(f"the manifest {given} is not inside {root}")
    if not (root / inside).is_file():
        raise CliError(f"no manifest at {root / inside}")
    return inside


def source(directory: str, manifest: str | None) -> Source:
    """The source in ``directory``: its manifest, read and checked here so that a mistake in
    it is reported before anything is packaged, and the Dockerfiles it names."""
    from relman_common.errors import RelmanError
    from relman_common.manifest import parse_manifest

    root = Path(directory)
    if not root.is_dir():
        raise CliError(f"{directory} is not a directory")
    inside = find_manifest(root, manifest)
    try:
        parsed = parse_manifest((root / inside).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"cannot read manifest {root / inside}: {err}") from err
    except RelmanError as err:
        raise CliError(f"{inside}: {err}") from err
    dockerfiles = {
        posixpath.normpath(posixpath.join(s.build.path, s.build.manifest))
        for s in parsed.services
        if s.build is not None
    }
    return Source(root, inside, (inside, *sorted(dockerfiles)))


def package_and_upload(
    ctx: click.Context, app: str, src: Source, progress: output.Progress, *, quiet: bool
) -> str:
    """Package ``src`` into a temporary file and upload it unless the server holds it
    already; returns the archive's sha256."""
    from relman_cli import packaging

    with tempfile.TemporaryFile(prefix="relman-source-") as archive_file:
        progress.start("Packaging source")
        meter = meter_for("Packaging source", progress, quiet=quiet)
        try:
            made = packaging.package(
                src.root, archive_file, src.needed, lambda read, _: meter.update(read)
            )
        finally:
            meter.close()
        progress.ok()
        progress.start("Uploading source")
        if not _held(ctx, app, made.sha256):
            archive_file.seek(0)
            meter = meter_for("Uploading source", progress, quiet=quiet, total=made.size)
            try:
                _upload(ctx, app, made, archive_file, meter.update)
            finally:
                meter.close()
        progress.ok()
    return made.sha256


def meter_for(label: str, progress: output.Progress, *, quiet: bool, total: int = 0) -> Meter:
    """A meter continuing the step's line when that line is on a terminal."""
    pending = f"{label}... " if output.is_tty(progress.stream) else ""
    return Meter(label, total=total or None, quiet=quiet, pending=pending)


def _held(ctx: click.Context, app: str, sha256: str) -> bool:
    """Whether the server holds the archive already (then it is not sent again)."""
    request = build_pb2.StatSourceRequest(app=app, sha256=sha256)
    try:
        client(ctx).builds.call(lambda stub: stub.StatSource, request)
    except CliError as err:
        if err.code == "NOT_FOUND":
            return False  # not held (or no such app: the upload will say which)
        raise
    return True


def _upload(
    ctx: click.Context, app: str, made: Archive, archive_file: BinaryIO, sent: Callable[[int], None]
) -> None:
    header = build_pb2.UploadSourceHeader(app=app, sha256=made.sha256, size=made.size)

    def parts() -> Iterator[build_pb2.UploadSourceRequest]:
        yield build_pb2.UploadSourceRequest(header=header)
        for chunk in read_chunks(archive_file, sent):
            yield build_pb2.UploadSourceRequest(chunk=chunk)

    client(ctx).builds.send(lambda stub: stub.UploadSource, parts())


def read_chunks(source: BinaryIO, done: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """``source`` in chunks of at most 1 MiB, read as they are sent; ``done`` is told the
    bytes read so far."""
    total = 0
    while chunk := source.read(CHUNK_BYTES):
        total += len(chunk)
        if done is not None:
            done(total)
        yield chunk
