"""Writing a gzip-compressed tar stream quickly and always the same way.

:class:`TarWriter` writes entries already normalised by the caller (owners 0:0 without
names, mtime 0) as POSIX tar: a plain ustar header when the name fits one, else the
standard library's pax header. Its bytes are exactly what ``tarfile`` writes in
``PAX_FORMAT`` for the same entries (a test holds it to that), without ``tarfile``'s cost per
entry, which is most of the time for a tree of many small files.

The gzip stream (no file name, mtime 0) is compressed on a second thread while the caller
reads files and makes headers, as ``tar | gzip`` does in two processes; zlib lets go of the
GIL while it works. What comes out is hashed and counted on its way to ``out``.
"""

from __future__ import annotations

import gzip
import hashlib
import queue
import tarfile
import threading
from collections.abc import Callable
from typing import BinaryIO

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # the archive's length is a multiple of this
COMPRESS_LEVEL = 6  # gzip's own default, the one `tar czf` uses
HANDOFF_BYTES = 256 * 1024  # handed to the compressing thread at a time
QUEUED_HANDOFFS = 8
READ_BYTES = 1024 * 1024

_NAME_LENGTH = 100
_ZERO_BLOCK = bytes(BLOCK)
_ZEROS_8 = b"\0" * 8
_OWNER_AND_TIME = b"0000000\0" * 2 + b"00000000000\0"  # uid 0, gid 0; then mtime 0
# magic and version, uname and gname (empty), devmajor and devminor (empty), prefix, padding
_TAIL = tarfile.POSIX_MAGIC + b"\0" * 32 * 2 + _ZEROS_8 * 2 + b"\0" * 155 + b"\0" * 12
_FIXED = sum(_OWNER_AND_TIME) + sum(b" " * 8) + sum(_TAIL)  # the checksum field as spaces


def header(name: str, mode: int, kind: bytes, size: int = 0, linkname: str = "") -> bytes:
    """The header block(s) of one entry: owners 0:0 without names, mtime 0."""
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    if (
        len(name) > _NAME_LENGTH
        or len(linkname) > _NAME_LENGTH
        or not (name.isascii() and linkname.isascii())
        or size >= 8**11
    ):
        return _pax_header(name, mode, kind, size, linkname)
    name_field = name.encode("ascii")
    link_field = linkname.encode("ascii")
    mode_field = b"%07o\0" % (mode & 0o7777)
    size_field = b"%011o\0" % size
    # The checksum is the sum of the header's bytes (its own field as spaces); NUL padding
    # adds nothing, and the fixed fields' sum is known once for all.
    checksum = (
        sum(name_field) + sum(link_field) + sum(mode_field) + sum(size_field) + kind[0] + _FIXED
    )
    return b"".join(
        (
            name_field.ljust(_NAME_LENGTH, b"\0"),
            mode_field,
            _OWNER_AND_TIME[:16],
            size_field,
            _OWNER_AND_TIME[16:],
            b"%06o\0 " % checksum,
            kind,
            link_field.ljust(_NAME_LENGTH, b"\0"),
            _TAIL,
        )
    )


def _pax_header(name: str, mode: int, kind: bytes, size: int, linkname: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.mode, info.type, info.size, info.linkname = mode, kind, size, linkname
    info.mtime = info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarWriter:
    """A tar stream of entries, gzip-compressed, hashed and counted on its way to ``out``.

    Use it as a context manager: leaving normally ends the archive; leaving on an error stops
    the compressing thread and leaves ``out`` unfinished (its owner throws it away).
    """

    def __init__(self, out: BinaryIO) -> None:
        self._gzip = _BackgroundGzip(out)
        self.entries = 0

    @property
    def sha256(self) -> str:
        return self._gzip.sink.sha256.hexdigest()

    @property
    def size(self) -> int:
        """Compressed bytes written so far."""
        return self._gzip.sink.size

    def directory(self, name: str, mode: int) -> None:
        self._entry(header(name, mode, tarfile.DIRTYPE))

    def symlink(self, name: str, mode: int, target: str) -> None:
        self._entry(header(name, mode, tarfile.SYMTYPE, linkname=target))

    def file(self, name: str, mode: int, size: int, read: Callable[[int], bytes]) -> None:
        """A regular file of ``size`` bytes, from ``read(at most n)``; ValueError if it
        holds fewer (it changed since ``size`` was taken)."""
        head = header(name, mode, tarfile.REGTYPE, size)
        padding = _ZERO_BLOCK[: -size % BLOCK]
        if size <= READ_BYTES:  # most files: header, content and padding in one write
            content = read(size) if size else b""
            if len(content) < size:
                raise ValueError(f"{name} shrank while it was being read")
            self._entry(head + content + padding)
            return
        self._entry(head)
        remaining = size
        while remaining:
            chunk = read(min(remaining, READ_BYTES))
            if not chunk:
                raise ValueError(f"{name} shrank while it was being read")
            self._gzip.write(chunk)
            remaining -= len(chunk)
        self._gzip.write(padding)

    def _entry(self, head: bytes) -> None:
        self._gzip.write(head)
        self.entries += 1

    def __enter__(self) -> TarWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self._gzip.write(b"\0" * BLOCK * 2)  # the end of the archive, then the record
            written = self._gzip.uncompressed
            if written % RECORD:
                self._gzip.write(b"\0" * (RECORD - written % RECORD))
        self._gzip.close(finish=kind is None)


class _BackgroundGzip:
    """Bytes written are gzip-compressed on a second thread, then hashed and written out."""

    def __init__(self, out: BinaryIO) -> None:
        self.sink = _HashingSink(out)
        self.uncompressed = 0
        self._pending = bytearray()
        self._handoffs: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_HANDOFFS)
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._compress, name="relman-gzip", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        self._pending += data
        self.uncompressed += len(data)
        if len(self._pending) >= HANDOFF_BYTES:
            self._hand(bytes(self._pending))
            self._pending.clear()

    def close(self, *, finish: bool) -> None:
        """Compress what is left and end the gzip stream; or, not ``finish``, just stop."""
        if not finish:
            self._stop.set()
            self._thread.join()
            return
        if self._pending:
            self._hand(bytes(self._pending))
        self._hand(None)
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    def _hand(self, block: bytes | None) -> None:
        while True:
            if self._failure is not None:
                raise self._failure
            try:
                self._handoffs.put(block, timeout=0.1)
                return
            except queue.Full:
                continue

    def _compress(self) -> None:
        try:
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=self.sink, compresslevel=COMPRESS_LEVEL, mtime=0
            ) as compressed:
                while not self._stop.is_set():
                    try:
                        block = self._handoffs.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if block is None:
                        return
                    compressed.write(block)
        except BaseException as err:  # handed to the writing thread by _hand and close
            self._failure = err


class _HashingSink:
    """The file object GzipFile writes to: hashes and counts what passes on to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()
