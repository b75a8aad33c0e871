"""A source directory as the archive ``relman build`` uploads: a gzip-compressed tar file.

Which files go in follows Docker's ``.dockerignore`` semantics, matched by the Docker SDK for
Python's own matcher (``**``, ``!`` exceptions, a pattern naming a directory excludes all of
it); the ``.dockerignore`` file itself and the files the build needs (the manifest, each
service's Dockerfile) are always sent, as ``docker build`` always sends its Dockerfile.

The archive depends on nothing but the tree: entries sorted by name, every mtime 0, owners
0:0 without names, gzip without a timestamp or file name; file modes (permission bits) and
symbolic links are kept. The same tree therefore always gives the same sha256, which is what
lets the server say it already holds an upload.

The archive is written to a file object while it is hashed, never held whole in memory.
Nothing here talks to a server.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

from relman_common.dockerignore import DOCKERIGNORE, IgnoreMatcher, read_patterns

from relman_cli.archive import TarWriter
from relman_cli.errors import CliError

PROGRESS_SECONDS = 0.1

# (source bytes read so far, archive bytes written so far)
OnProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class Archive:
    sha256: str
    size: int
    entries: int


def read_ignore(root: Path) -> list[str]:
    try:
        return read_patterns(root)
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"cannot read {root / DOCKERIGNORE}: {_why(err)}") from err


def select(root: Path, always: Iterable[str] = ()) -> list[tuple[str, os.DirEntry[str]]]:
    """The entries under ``root`` (files, directories, links) that go in the archive, sorted
    by path (relative, ``/``-separated): all but what ``.dockerignore`` excludes, plus
    ``always``.

    The decisions are the SDK matcher's (``matches``, and its rule for looking inside an
    excluded directory); the walk is ours, with ``os.scandir``, for speed: it selects the
    same paths as the SDK's ``walk`` (a test holds it to that).
    """
    matcher = IgnoreMatcher(read_ignore(root) + [f"!{path}" for path in always])
    found: list[tuple[str, os.DirEntry[str]]] = []
    pending = [""]
    try:
        while pending:
            folder = pending.pop()
            with os.scandir(os.path.join(root, folder)) as entries:
                for entry in entries:
                    path = f"{folder}/{entry.name}" if folder else entry.name
                    excluded = matcher.excludes(path)
                    if not excluded:
                        found.append((path, entry))
                    if entry.is_dir(follow_symlinks=False) and matcher.looks_inside(path, excluded):
                        pending.append(path)
    except OSError as err:
        raise CliError(f"cannot read {err.filename or root}: {_why(err)}") from err
    found.sort(key=itemgetter(0))
    return found


def package(
    root: Path, out: BinaryIO, always: Iterable[str] = (), on_progress: OnProgress | None = None
) -> Archive:
    """Write the archive of ``root`` to ``out``; its sha256, size and number of entries.
    ``on_progress`` hears how far it has got every tenth of a second or so, and at the end."""
    if not root.is_dir():
        raise CliError(f"{root} is not a directory")
    with TarWriter(out) as tar:
        reading = _Reading(tar, on_progress)
        for path, entry in select(root, always):
            _add(tar, path, entry, reading)
    reading.report()
    return Archive(tar.sha256, tar.size, tar.entries)


class _Reading:
    """The bytes of content read so far, told to ``on_progress`` now and then."""

    def __init__(self, tar: TarWriter, on_progress: OnProgress | None) -> None:
        self.tar = tar
        self.on_progress = on_progress
        self.total = 0
        self.last = time.monotonic()

    def read(self, fd: int, n: int) -> bytes:
        data = os.read(fd, n)
        self.total += len(data)
        if self.on_progress is not None and time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.report()
        return data

    def report(self) -> None:
        if self.on_progress is not None:
            self.last = time.monotonic()
            self.on_progress(self.total, self.tar.size)


# A file is opened without following a link, and without blocking should it have turned
# into a pipe since the directory was read.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _add(tar: TarWriter, path: str, entry: os.DirEntry[str], reading: _Reading) -> None:
    """Add one entry, normalised."""
    try:
        if entry.is_file(follow_symlinks=False):
            _add_file(tar, path, entry.path, reading)
            return
        st = entry.stat(follow_symlinks=False)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            tar.directory(path, mode)
        elif stat.S_ISLNK(st.st_mode):
            tar.symlink(path, mode, os.readlink(entry.path))
        # sockets, pipes, devices: nothing an image is built from
    except OSError as err:
        raise CliError(f"cannot read {entry.path}: {_why(err)}") from err
    except ValueError as err:  # it shrank while it was being read
        raise CliError(f"{entry.path} changed while it was being packaged") from err


def _add_file(tar: TarWriter, path: str, full: str, reading: _Reading) -> None:
    """A regular file, read with plain system calls: for a tree of small files the cost of
    Python's file objects would be a good part of the whole."""
    fd = os.open(full, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{full} is no longer a file")
        tar.file(path, stat.S_IMODE(st.st_mode), st.st_size, lambda n: reading.read(fd, n))
    finally:
        os.close(fd)


def _why(err: OSError | UnicodeDecodeError) -> str:
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return "not UTF-8 text"
