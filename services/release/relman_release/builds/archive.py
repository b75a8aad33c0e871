"""Source archives (gzip-compressed tar files): checked before they are kept, read, unpacked.

Every pass decompresses as it reads and keeps no member list, so memory does not grow with
the archive; a single read of more than :data:`MAX_HEADER_BYTES` (a pax header or a long
name that big) is refused rather than held. :func:`check_archive` is the gate: absolute
paths, ``..``, links whose target leaves the root (followed through the archive's other
links, as the kernel would), devices and fifos, too many entries or bytes are refused with
the entry named. What a checked archive holds is read in :mod:`.contents`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from relman_common.errors import InvalidArgument, ResourceExhausted
from relman_common.vocabulary import quote

# Reasons (ErrorInfo.reason) of refused archives.
INVALID_SOURCE = "INVALID_SOURCE"
SOURCE_TOO_LARGE = "SOURCE_TOO_LARGE"

# The largest single read tarfile may ask for: a header, a long name, a pax record.
MAX_HEADER_BYTES = 1024 * 1024
# Links followed while resolving one link, as Linux allows (ELOOP after 40).
MAX_LINK_HOPS = 40
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What an archive may hold: bytes (compressed, and unpacked) and entries."""

    max_bytes: int
    max_entries: int


@dataclass(frozen=True)
class ArchiveInfo:
    entries: int
    unpacked_bytes: int


def refused(message: str) -> InvalidArgument:
    return InvalidArgument(f"invalid source archive: {message}", reason=INVALID_SOURCE)


def too_large(message: str) -> ResourceExhausted:
    return ResourceExhausted(message, reason=SOURCE_TOO_LARGE)


def check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise too_large(
            f"the source archive is {size} bytes, more than the {limits.max_bytes} bytes "
            "allowed (RELMAN_SOURCE_MAX_BYTES)"
        )


class _Decompressed(io.RawIOBase):
    """The tar stream inside a gzip file, seekable forward only (as tarfile reads a file
    member by member), refusing any single read larger than MAX_HEADER_BYTES."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_HEADER_BYTES:
            raise refused(f"an entry's header is larger than {MAX_HEADER_BYTES} bytes")
        data = self._gzip.read(size)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._pos + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._pos:
            raise OSError("source archives are read forward only")
        while self._pos < target:
            skipped = len(self._gzip.read(min(_CHUNK, target - self._pos)))
            if not skipped:
                break
            self._pos += skipped
        return self._pos


@contextlib.contextmanager
def open_members(raw: BinaryIO) -> Iterator[tuple[tarfile.TarFile, Iterator[tarfile.TarInfo]]]:
    """The archive and its members in order; the archive keeps none of them."""
    try:
        with tarfile.open(fileobj=_Decompressed(raw), mode="r:") as tar:  # type: ignore[call-overload]

            def members() -> Iterator[tarfile.TarInfo]:
                while (member := tar.next()) is not None:
                    tar.members.clear()  # type: ignore[attr-defined]  # keep none
                    yield member

            yield tar, members()
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as err:
        raise refused(f"not a gzip-compressed tar file, or damaged ({err})") from None


def normal_path(name: str) -> str | None:
    """``a/b`` for ``./a//b/``, ``""`` for the root; None for a path that is absolute or
    holds ``..``.

    >>> normal_path("./src//app.py"), normal_path("."), normal_path("a/../b"), normal_path("/x")
    ('src/app.py', '', None, None)
    """
    if name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return None if ".." in parts else "/".join(parts)


class _Namespace:
    """The paths an archive makes, by kind (last entry wins), for resolving its links."""

    def __init__(self) -> None:
        self.links: dict[str, str] = {}
        self.files: set[str] = set()

    def add(self, path: str, member: tarfile.TarInfo) -> None:
        self.links.pop(path, None)
        self.files.discard(path)
        if member.issym():
            self.links[path] = member.linkname
        elif member.isfile() or member.islnk():
            self.files.add(path)

    def escapes(self, link: str) -> str:
        """Why the link at ``link`` is refused ("" when it is not): it resolves outside the
        root, following every link of the archive on its way, or its links make a loop."""
        outside = f"points outside the archive ({quote(self.links[link])})"
        if self.links[link].startswith("/"):
            return outside
        parts = [*posixpath.dirname(link).split("/"), *self.links[link].split("/")]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    return outside
                resolved.pop()
                continue
            resolved.append(part)
            target = self.links.get("/".join(resolved))
            if target is not None:
                hops += 1
                if hops > MAX_LINK_HOPS:
                    return "is a loop of links"
                if target.startswith("/"):
                    return outside
                resolved.pop()
                parts = [*target.split("/"), *parts]
        return ""


def _check_member(member: tarfile.TarInfo, names: _Namespace) -> str:
    """The member's normal path, or the refusal that names it."""
    path = normal_path(member.name)
    if path is None:
        why = "has an absolute path" if member.name.startswith("/") else 'leaves the root ("..")'
        raise refused(f"the entry {quote(member.name)} {why}")
    if member.isdev() or member.isfifo():
        kind = "a fifo" if member.isfifo() else "a device"
        raise refused(
            f"the entry {quote(member.name)} is {kind}: only files, directories and links"
        )
    if member.issparse() or not (
        member.isfile() or member.isdir() or member.issym() or member.islnk()
    ):
        raise refused(f"the entry {quote(member.name)} is of a kind sources may not hold")
    if member.islnk():
        target = normal_path(member.linkname)
        if target is None or target not in names.files:
            raise refused(
                f"the hard link {quote(member.name)} names {quote(member.linkname)}, which is "
                "not a file earlier in the archive"
            )
    if not path and not member.isdir():
        raise refused(f"the entry {quote(member.name)} replaces the root with a file")
    return path


def check_archive(raw: BinaryIO, limits: Limits) -> ArchiveInfo:
    """Reads the whole archive in ``raw``; refuses it (InvalidArgument naming the entry, or
    ResourceExhausted naming the limit) unless it is safe to unpack."""
    names = _Namespace()
    entries = unpacked = 0
    with open_members(raw) as (_, members):
        for member in members:
            entries += 1
            if entries > limits.max_entries:
                raise too_large(
                    f"the source holds more than {limits.max_entries} files, directories and "
                    "links (RELMAN_SOURCE_MAX_ENTRIES)"
                )
            names.add(_check_member(member, names), member)
            unpacked += member.size if member.isfile() else 0
            if unpacked > limits.max_bytes:
                raise too_large(
                    f"the source unpacks to more than {limits.max_bytes} bytes "
                    "(RELMAN_SOURCE_MAX_BYTES)"
                )
    for link in sorted(names.links):
        why = names.escapes(link)
        if why:
            raise refused(f"the link {quote(link)} {why}")
    return ArchiveInfo(entries=entries, unpacked_bytes=unpacked)
