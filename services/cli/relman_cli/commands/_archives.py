"""A build as a file: exported to one (streamed to disk, in place only once it is whole) and
imported from one (streamed from disk, or from stdin with ``-``)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import click
import grpc
from relman.v1 import build_pb2, release_pb2

from relman_cli import output
from relman_cli.commands._common import client
from relman_cli.commands._source import meter_for, read_chunks
from relman_cli.errors import CliError

STDIO = "-"


def export(ctx: click.Context, app: str, build_id: str, path: str | None) -> None:
    """``Exporting build... OK``, the build's archive written to ``path`` (or stdout when it
    is not a terminal)."""
    to_stdout = path is None or path == STDIO
    if to_stdout and output.is_tty(sys.stdout):
        raise CliError("give -f/--file FILE, or pipe this command into a file")
    progress = output.Progress(sys.stderr if to_stdout else None)
    progress.start("Exporting build")
    meter = meter_for("Exporting build", progress, quiet=False)
    chunks = _exported(ctx, app, build_id, meter.update)
    try:
        if to_stdout:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        else:
            assert path is not None
            _write_whole(Path(path), chunks)
    finally:
        meter.close()
    progress.ok()


def _exported(
    ctx: click.Context, app: str, build_id: str, received: Callable[[int], None]
) -> Iterator[bytes]:
    builds = client(ctx).builds
    request = build_pb2.ExportBuildRequest(app=app, id=build_id)
    total = 0
    try:
        for chunk in builds.stream(lambda stub: stub.ExportBuild, request):
            total += len(chunk.data)
            received(total)
            yield chunk.data
    except grpc.RpcError as err:
        raise builds.error(err) from None


def _write_whole(path: Path, chunks: Iterator[bytes]) -> None:
    """Write ``chunks`` to a temporary file beside ``path``, then put it in place: a failed
    export leaves no half-written file behind."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.chmod(partial, 0o666 & ~_umask())
        os.replace(partial, path)
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror or err}") from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def import_archive(
    ctx: click.Context, app: str, path: str, progress: output.Progress, *, quiet: bool
) -> release_pb2.ImportBuildResponse:
    """``Importing build... ``: the archive at ``path`` (``-``: stdin) sent as it is read; the
    caller ends the line (with the release made of it, as Convox does)."""
    progress.start("Importing build")
    with _opened(path) as source:
        meter = meter_for("Importing build", progress, quiet=quiet, total=_size(source))

        def parts() -> Iterator[build_pb2.ImportBuildArchiveRequest]:
            yield build_pb2.ImportBuildArchiveRequest(app=app)
            for chunk in read_chunks(source, meter.update):
                yield build_pb2.ImportBuildArchiveRequest(chunk=chunk)

        try:
            response = client(ctx).builds.send(lambda stub: stub.ImportBuildArchive, parts())
        finally:
            meter.close()
    return response


@contextlib.contextmanager
def _opened(path: str) -> Iterator[BinaryIO]:
    if path == STDIO:
        if output.is_tty(sys.stdin):
            raise CliError("pipe an exported build into this command, or give -f/--file FILE")
        yield sys.stdin.buffer
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 -- closed below, after the upload
    except OSError as err:
        raise CliError(f"cannot read {path}: {err.strerror or err}") from err
    with f:
        yield f


def _size(source: BinaryIO) -> int:
    try:
        return os.fstat(source.fileno()).st_size
    except (OSError, ValueError):
        return 0
