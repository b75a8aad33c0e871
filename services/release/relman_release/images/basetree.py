"""What a base image's filesystem holds, as far as placing files on it needs: which paths are
directories, files or symbolic links. Docker decides where ``COPY a /usr/bin`` goes by
looking (``/usr/bin`` is a directory: the file goes inside it) and follows the base's links
(``/bin -> usr/bin``); the local builder does the same from the base's layers' headers.

Paths are relative, without a leading ``/`` (``usr/bin``); ``""`` is the root.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable, Iterator

from relman_common.errors import InvalidArgument

DIR, FILE, LINK = "dir", "file", "link"
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_MAX_LINKS = 40


class BaseTree:
    """The union of a base image's layers (whiteouts applied): kinds and link targets."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {"": DIR}
        self.links: dict[str, str] = {}

    def add_layer(self, chunks: Iterable[bytes]) -> None:
        """Apply one layer (a tar, gzip-compressed or not) on top of those before."""
        added: dict[str, tuple[str, str]] = {}
        gone: list[str] = []
        opaque: list[str] = []
        try:
            with tarfile.open(fileobj=_Reader(iter(chunks)), mode="r|*") as archive:
                for member in archive:
                    path = posixpath.normpath(member.name.lstrip("/")).removeprefix("./")
                    parent, name = posixpath.split(path)
                    if name == _OPAQUE:
                        opaque.append(parent)
                    elif name.startswith(_WHITEOUT):
                        gone.append(posixpath.join(parent, name[len(_WHITEOUT) :]))
                    elif path not in ("", "."):
                        added[path] = _kind(member)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise InvalidArgument(f"a layer of the base image cannot be read: {err}") from None
        for path in gone:
            self._remove(path, keep_self=False)
        for path in opaque:
            self._remove(path, keep_self=True)
        for path, (kind, target) in added.items():
            self.kinds[path] = kind
            if kind == LINK:
                self.links[path] = target
            else:
                self.links.pop(path, None)

    def _remove(self, path: str, *, keep_self: bool) -> None:
        prefix = path + "/" if path else ""
        for known in [k for k in self.kinds if k.startswith(prefix) or k == path]:
            if known == path and keep_self:
                continue
            self.kinds.pop(known, None)
            self.links.pop(known, None)

    def kind(self, path: str) -> str | None:
        return self.kinds.get(path)

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """``path`` with the base's symbolic links followed (the last component's only if
        ``follow_last``), as the kernel would inside the image; links stay inside the root."""
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            here = posixpath.join(*done, part) if done else part
            if part == "..":
                done = done[:-1]
                continue
            if here in self.links and (parts or follow_last) and hops < _MAX_LINKS:
                hops += 1
                target = self.links[here]
                base = [] if target.startswith("/") else done
                parts = [*base, *[p for p in target.split("/") if p and p != "."], *parts]
                done = []
                continue
            done.append(part)
        return "/".join(done)

    def is_dir(self, path: str) -> bool:
        return self.kinds.get(self.resolve(path)) == DIR


def _kind(member: tarfile.TarInfo) -> tuple[str, str]:
    if member.isdir():
        return DIR, ""
    if member.issym():
        return LINK, member.linkname
    return FILE, ""


class _Reader(io.RawIOBase):
    """A file over an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
