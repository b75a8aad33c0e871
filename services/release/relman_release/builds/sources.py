"""Where uploaded source archives are kept: content-addressed, by sha256.

:class:`SourceStore` is the interface the service uses (an object store can implement it);
:class:`FileSourceStore` keeps each archive as ``<root>/sha256/<hex>`` with its facts beside
it (``<hex>.json``). ``put`` streams the bytes to a temporary file in the same directory
while hashing them (memory stays flat whatever the size), checks the announced size and
sha256 and the archive itself (:func:`.archive.check_archive`), and only then renames it
into place: an upload cut short, a wrong hash or a refused archive leave nothing behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from relman_common.errors import InvalidArgument, NotFound
from relman_common.vocabulary import quote

from relman_release.builds.archive import ArchiveInfo, Limits, check_archive, check_size

SOURCE_NOT_FOUND = "SOURCE_NOT_FOUND"
SHA256 = re.compile(r"[0-9a-f]{64}")
# Temporary files older than this are left over by a process that died while uploading.
_CHUNK = 1024 * 1024  # read from the pipe at a time
STALE_UPLOAD_SECONDS = 3600
_TEMP_PREFIX = ".upload-"


@dataclass(frozen=True)
class SourceInfo:
    sha256: str
    size: int
    entries: int


def check_sha256(sha256: str, field: str = "sha256") -> str:
    if not SHA256.fullmatch(sha256):
        raise InvalidArgument(
            f"invalid sha256 {quote(sha256)}: expected 64 lowercase hex digits", field=field
        )
    return sha256


def not_held(sha256: str, field: str = "sha256") -> NotFound:
    return NotFound(f"source not found: {sha256}", reason=SOURCE_NOT_FOUND, field=field)


class SourceStore(Protocol):
    """Source archives by sha256. Safe to use from several threads at once."""

    limits: Limits

    def stat(self, sha256: str) -> SourceInfo | None:
        """The archive's facts when it is held, else None."""
        ...

    def put(self, sha256: str, size: int, chunks: Iterable[bytes]) -> SourceInfo:
        """Keeps the archive whose bytes ``chunks`` yields, once it is whole, hashes to
        ``sha256`` and passes the checks; otherwise keeps nothing and raises."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """The archive's bytes (NotFound when it is not held)."""
        ...

    def delete(self, sha256: str) -> None:
        """Forgets the archive; nothing happens when it is not held."""
        ...


class FileSourceStore:
    """Archives as files under ``root`` (``<data-dir>/sources``)."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = Path(root)
        self.limits = limits
        self._dir = self.root / "sha256"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_uploads()

    def _path(self, sha256: str) -> Path:
        return self._dir / check_sha256(sha256)

    def stat(self, sha256: str) -> SourceInfo | None:
        path = self._path(sha256)
        try:
            facts = json.loads(path.with_suffix(".json").read_text())
            size = path.stat().st_size
        except (FileNotFoundError, ValueError):
            return None
        return SourceInfo(sha256=sha256, size=size, entries=int(facts["entries"]))

    def put(self, sha256: str, size: int, chunks: Iterable[bytes]) -> SourceInfo:
        path = self._path(sha256)
        if size < 0:
            raise InvalidArgument(f"invalid size {size}", field="size")
        check_size(size, self.limits)
        fd, temp = tempfile.mkstemp(dir=self._dir, prefix=_TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                info = _receive_checked(out, sha256, size, chunks, self.limits)
            facts = {"size": size, "entries": info.entries, "unpacked": info.unpacked_bytes}
            _write_atomic(path.with_suffix(".json"), json.dumps(facts).encode())
            os.replace(temp, path)
            _sync_dir(self._dir)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        return SourceInfo(sha256=sha256, size=size, entries=info.entries)

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self._path(sha256).open("rb")
        except FileNotFoundError:
            raise not_held(sha256) from None

    def delete(self, sha256: str) -> None:
        path = self._path(sha256)
        for each in (path, path.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                each.unlink()

    def _remove_stale_uploads(self) -> None:
        cutoff = time.time() - STALE_UPLOAD_SECONDS
        for path in self._dir.glob(_TEMP_PREFIX + "*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()


def _receive_checked(
    out: BinaryIO, sha256: str, size: int, chunks: Iterable[bytes], limits: Limits
) -> ArchiveInfo:
    """:func:`_receive`, with the archive checked as it arrives, in a thread of its own fed
    through a pipe (so the check costs no time after the last byte, and the two use both
    cores). Errors of the bytes themselves (size, hash) come first, as when checked after."""
    feed_fd, tee_fd = os.pipe()
    with contextlib.suppress(OSError):  # a larger pipe: fewer switches between the threads
        fcntl.fcntl(tee_fd, fcntl.F_SETPIPE_SZ, _CHUNK)
    checked: list[ArchiveInfo | BaseException] = []

    def check() -> None:
        with os.fdopen(feed_fd, "rb") as feed:
            try:
                checked.append(check_archive(feed, limits))
                while feed.read(_CHUNK):  # what follows the tar's end (padding)
                    pass
            except BaseException as err:  # handed to the receiving thread
                checked.append(err)

    checker = threading.Thread(target=check, name="source-check", daemon=True)
    checker.start()
    tee = os.fdopen(tee_fd, "wb")
    try:

        def teed() -> Iterator[bytes]:
            open_ = True
            for chunk in chunks:
                if open_:
                    try:
                        tee.write(chunk)
                    except BrokenPipeError:  # the check failed: keep receiving, to say why
                        open_ = False
                yield chunk

        _receive(out, sha256, size, teed())
    finally:
        with contextlib.suppress(BrokenPipeError):
            tee.close()
        checker.join()
    outcome = checked[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _receive(out: BinaryIO, sha256: str, size: int, chunks: Iterable[bytes]) -> None:
    """Writes ``chunks`` to ``out``, hashing; refuses more or fewer bytes than ``size`` and
    bytes that do not hash to ``sha256``."""
    hasher = hashlib.sha256()
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > size:
            raise InvalidArgument(
                f"the upload sent more than the {size} bytes announced: nothing was kept",
                field="size",
            )
        hasher.update(chunk)
        out.write(chunk)
    if received != size:
        raise InvalidArgument(
            f"the upload ended after {received} of {size} bytes: nothing was kept", field="size"
        )
    if hasher.hexdigest() != sha256:
        raise InvalidArgument(
            f"the uploaded bytes hash to {hasher.hexdigest()}, not {sha256}: nothing was kept",
            field="sha256",
        )
    out.flush()
    os.fsync(out.fileno())


def _write_atomic(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
