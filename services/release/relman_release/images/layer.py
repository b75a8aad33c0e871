"""The build context as ONE layer, placed as the Dockerfile's COPY and ADD say; reproducible.

The rule: every COPY/ADD, in order, maps paths of the context to paths of the image as
Docker would. A directory's contents go into the destination. A file goes to the
destination, or inside it when it is written as a directory (``dir/`` or ``.``) or is a
directory already (in the base, made by WORKDIR or by an earlier COPY); several sources need
a destination written as a directory. The base's links are followed (``/bin -> usr/bin``).
The layer is the union of all of them: where two put something at the same path, the later
one wins, as its layer would in Docker; a path under a file, or a directory copied onto a
file, is an error. The layer holds these entries, the WORKDIR directories the base lacks and
the parent directories the base lacks (0755, root; ``tmp`` and ``var/tmp`` 1777) — nothing
else of the context. A base directory that files are copied into keeps its owner and mode
(unless ``--chown``/``--chmod``); directories that come from the context carry the context's
modes, as in Docker.

Reproducible like ko: entries sorted by path, mtime 0, owner 0:0 (unless ``--chown``), no
user or group names, modes as in the context (``--chmod`` wins), PAX tar, gzip (level 1)
without a name or time. The same context and Dockerfile give the same bytes, so the same
digest.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from relman_release.images.basetree import DIR, BaseTree
from relman_release.images.placement import Entry, place

__all__ = ["Entry", "Layer", "place", "write_layer"]

_DIR_MODE = 0o755
_STICKY_DIRS = {"tmp": 0o1777, "var/tmp": 0o1777}


@dataclass(frozen=True)
class Layer:
    """A written layer: the gzip file, its digest, the digest of its tar (``diff_id``)."""

    path: Path
    digest: str
    diff_id: str
    size: int
    entries: int


class _Hashing:
    """A writer that hashes and counts what passes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


def _with_parents(entries: dict[str, Entry], base: BaseTree) -> dict[str, Entry]:
    """``entries`` and the directories above them that neither they nor the base have."""
    full = dict(entries)
    for path in entries:
        parent = posixpath.dirname(path)
        while parent and parent not in full and base.kind(parent) != DIR:
            full[parent] = Entry(DIR, None, _STICKY_DIRS.get(parent, _DIR_MODE))
            parent = posixpath.dirname(parent)
    return full


def write_layer(entries: dict[str, Entry], base: BaseTree, directory: Path | None = None) -> Layer:
    """Write the layer to a new file in ``directory`` (the system's temporary directory by
    default); the caller removes it."""
    full = _with_parents(entries, base)
    fd, name = tempfile.mkstemp(prefix="relman-layer-", suffix=".tar.gz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            compressed = _Hashing(out)
            with gzip.GzipFile(
                filename="", mode="wb", compresslevel=1, fileobj=compressed, mtime=0
            ) as zipped:  # type: ignore[arg-type]
                plain = _Hashing(zipped)  # type: ignore[arg-type]
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    for path in sorted(full, key=lambda p: p.split("/")):
                        _add(tar, path, full[path])
    except BaseException:
        os.unlink(name)
        raise
    return Layer(Path(name), compressed.digest, plain.digest, compressed.size, len(full))


def _add(tar: tarfile.TarFile, path: str, entry: Entry) -> None:
    info = tarfile.TarInfo(path)
    info.mtime = 0
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    if entry.kind == DIR:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.link:
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link
        tar.addfile(info)
    else:
        assert entry.source is not None
        with entry.source.open("rb") as handle:
            info.size = os.fstat(handle.fileno()).st_size
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ValueError(f"{entry.source} is not a regular file")
            tar.addfile(info, handle)
