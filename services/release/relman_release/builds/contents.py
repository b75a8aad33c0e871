"""What a checked source archive holds: its paths and one file's bytes (CreateBuild reads
the manifest and checks the Dockerfiles before a build exists), and its files on disk (the
build's context). Both read the archive once, front to back, as :mod:`.archive` does."""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from relman_common.errors import InvalidArgument
from relman_common.vocabulary import quote

from relman_release.builds.archive import normal_path, open_members, refused


@dataclass(frozen=True)
class Contents:
    """What a build checks in a source before it starts: the paths of its files (links
    included) and directories (those only implied by a file's path too), and one file's
    bytes (None when the archive does not hold it)."""

    files: frozenset[str]
    dirs: frozenset[str]
    wanted: bytes | None


def read_contents(raw: BinaryIO, wanted: str, max_wanted: int) -> Contents:
    """The paths of a checked archive and the bytes of its file ``wanted`` (at most
    ``max_wanted`` bytes, else InvalidArgument)."""
    files: set[str] = set()
    dirs: set[str] = {""}
    data: bytes | None = None
    with open_members(raw) as (tar, members):
        for member in members:
            path = normal_path(member.name) or ""
            (dirs if member.isdir() else files).add(path)
            dirs.update(_parents(path))
            if path == wanted and member.isfile():
                if member.size > max_wanted:
                    raise InvalidArgument(
                        f"{quote(wanted)} is {member.size} bytes, more than {max_wanted}",
                        field="manifest_path",
                    )
                handle = tar.extractfile(member)
                assert handle is not None
                data = handle.read()
    return Contents(frozenset(files), frozenset(dirs), data)


def _parents(path: str) -> Iterator[str]:
    while path:
        path = posixpath.dirname(path)
        yield path


def _keep_mode(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """Python's ``data`` filter (refuses what escapes ``dest`` on the real files), but with
    the archive's own file modes (readable, and directories writable, by this user)."""
    checked = tarfile.data_filter(member, dest)
    if member.isfile():
        return checked.replace(mode=(member.mode & 0o7777) | 0o400, deep=False)
    if member.isdir():
        return checked.replace(mode=(member.mode & 0o7777) | 0o700, deep=False)
    return checked


def unpack(raw: BinaryIO, dest: Path) -> None:
    """Extracts a checked archive into the empty directory ``dest``."""
    directories: list[tarfile.TarInfo] = []
    dest.mkdir(parents=True, exist_ok=True)
    target = os.fspath(dest)
    with open_members(raw) as (tar, members):
        for member in members:
            try:
                kept = _keep_mode(member, target)
            except tarfile.FilterError as err:
                raise refused(str(err)) from None
            if kept.isdir():
                directories.append(kept)
            tar.extract(kept, target, set_attrs=not kept.isdir(), filter="fully_trusted")
        for directory in sorted(directories, key=lambda d: d.name, reverse=True):
            path = os.path.join(target, directory.name)
            tar.chmod(directory, path)
            tar.utime(directory, path)
