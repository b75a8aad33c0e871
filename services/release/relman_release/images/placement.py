"""Where COPY and ADD put the context's files in the image (the rule is in :mod:`.layer`).

Sources are paths of the context (a leading ``/`` means the context's root); ``*``, ``?``
and ``[...]`` match within one path component, as Go's ``filepath.Match`` does for Docker.
A source that names a link is followed (it must stay in the context); links inside a copied
directory are copied as links.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

from relman_common.dockerignore import IgnoreMatcher
from relman_common.errors import FailedPrecondition, InvalidArgument
from relman_common.vocabulary import quote

from relman_release.images.base import MISSING_SOURCE, UNSUPPORTED_INSTRUCTION, USE_DOCKER
from relman_release.images.basetree import DIR, FILE, LINK, BaseTree
from relman_release.images.copystep import CopyStep

_MAGIC = frozenset("*?[")
# gzip, bzip2, xz, and "ustar" at 257: what Docker's ADD would unpack.
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


@dataclass(frozen=True)
class Entry:
    """One thing the layer holds: a directory, a file (``source`` in the context) or a link."""

    kind: str
    source: Path | None
    mode: int
    uid: int = 0
    gid: int = 0
    link: str = ""


def place(
    context: Path,
    steps: list[CopyStep],
    workdirs: list[str],
    base: BaseTree,
    ignores: IgnoreMatcher | None = None,
) -> dict[str, Entry]:
    """The layer's entries by image path (relative, no leading ``/``). ``ignores`` is the
    context's ``.dockerignore``: what it excludes stays out of COPY and ADD."""
    root = context.resolve()
    placed: dict[str, Entry] = {}
    for workdir in workdirs:
        path = base.resolve(workdir.lstrip("/"))
        if path and not base.is_dir(path):
            placed.setdefault(path, Entry(DIR, None, 0o755))
    for step in steps:
        sources = [
            found for pattern in step.sources for found in _expand(root, step, pattern, ignores)
        ]
        dest = base.resolve(step.dest.lstrip("/"), follow_last=False)
        into = step.into_dir or _is_dir(dest, base, placed)
        if len(sources) > 1 and not step.into_dir:
            raise _copy_error(step, "with several sources the destination must end with /")
        for name, source in sources:
            if source.is_dir():
                _place_dir(source, base.resolve(dest), step, placed, base, root, ignores)
            else:
                target = posixpath.join(dest, name) if into else dest
                _place_file(source, base.resolve(target, follow_last=False), step, placed)
    _check_parents(placed, base)
    return placed


def _is_dir(path: str, base: BaseTree, placed: dict[str, Entry]) -> bool:
    if path in placed:
        return placed[path].kind == DIR
    return base.is_dir(path)


def _copy_error(step: CopyStep, message: str) -> InvalidArgument:
    return InvalidArgument(f"Dockerfile line {step.line}: {step.keyword} {message}")


def _expand(
    root: Path, step: CopyStep, pattern: str, ignores: IgnoreMatcher | None
) -> list[tuple[str, Path]]:
    """The context's paths ``pattern`` names, but those ``.dockerignore`` leaves out: each
    with its name and its path, links followed."""
    relative = posixpath.normpath(pattern.lstrip("/") or ".")
    if relative == ".." or relative.startswith("../"):
        raise _copy_error(step, f"{quote(pattern)}: the source is outside the build context")
    found = [root]
    for part in [] if relative == "." else relative.split("/"):
        if _MAGIC & set(part):
            found = [
                child
                for parent in found
                if parent.is_dir()
                for child in sorted(parent.iterdir())
                if fnmatch.fnmatchcase(child.name, part)
            ]
        else:
            found = [parent / part for parent in found if os.path.lexists(parent / part)]
    if ignores is not None:
        found = [
            path
            for path in found
            if path == root or not ignores.excludes(path.relative_to(root).as_posix())
        ]
    if not found:
        raise InvalidArgument(
            f"Dockerfile line {step.line}: {step.keyword} failed: {quote(pattern)} is not in the "
            "build context (or .dockerignore left it out)",
            reason=MISSING_SOURCE,
        )
    for path in found:
        if not path.resolve().is_relative_to(root):
            raise _copy_error(step, f"{quote(pattern)}: a link that leaves the build context")
    return [(path.name, path.resolve()) for path in found]


def _entry(path: Path, step: CopyStep, info: os.stat_result) -> Entry:
    uid, gid = step.owner or (0, 0)
    if stat.S_ISLNK(info.st_mode):
        return Entry(LINK, None, 0o777, uid, gid, os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return Entry(DIR, None, step.mode or stat.S_IMODE(info.st_mode), uid, gid)
    if not stat.S_ISREG(info.st_mode):
        raise _copy_error(step, f"{path.name}: not a file, directory or link")
    return Entry(FILE, path, step.mode or stat.S_IMODE(info.st_mode), uid, gid)


def _place_file(source: Path, target: str, step: CopyStep, placed: dict[str, Entry]) -> None:
    if not target:
        raise _copy_error(step, "cannot replace the image's root directory with a file")
    if step.keyword == "ADD" and _is_archive(source):
        raise FailedPrecondition(
            f"Dockerfile line {step.line}: ADD {source.name}: Docker would unpack this archive; "
            f"the local builder does not: COPY its unpacked files, or {USE_DOCKER}",
            reason=UNSUPPORTED_INSTRUCTION,
        )
    placed[target] = _entry(source, step, source.stat())


def _place_dir(
    source: Path,
    target: str,
    step: CopyStep,
    placed: dict[str, Entry],
    base: BaseTree,
    root: Path,
    ignores: IgnoreMatcher | None,
) -> None:
    """A directory's contents into ``target``, but what ``ignores`` excludes (a directory it
    excludes goes in only to hold what an exception keeps, as Docker walks it). A directory
    the base has keeps its owner and mode (unless --chown/--chmod); a link of the base to a
    directory stays a link."""
    uid, gid = step.owner or (0, 0)
    if (target in placed and placed[target].kind != DIR) or base.kind(target) == FILE:
        raise _copy_error(step, f"cannot copy a directory to /{target}: it is a file")
    if target and (step.owner or step.mode or not base.is_dir(target)):
        placed[target] = Entry(DIR, None, step.mode or 0o755, uid, gid)
    for folder, dirs, files in os.walk(source):
        dirs.sort()
        here = Path(folder)
        if ignores is not None:
            folder_path = here.relative_to(root).as_posix()
            paths = {
                name: name if folder_path == "." else f"{folder_path}/{name}"
                for name in [*dirs, *files]
            }
            kept = {name: not ignores.excludes(path) for name, path in paths.items()}
            dirs[:] = [d for d in dirs if ignores.looks_inside(paths[d], not kept[d])]
            files = [f for f in files if kept[f]]
        for name in sorted([*dirs, *files]):
            path = here / name
            relative = path.relative_to(source).as_posix()
            image_path = base.resolve(posixpath.join(target, relative), follow_last=False)
            entry = _entry(path, step, path.lstat())
            if entry.kind == DIR and base.kind(image_path) == LINK:
                continue
            placed[image_path] = entry


def _check_parents(placed: dict[str, Entry], base: BaseTree) -> None:
    for path in placed:
        parent = posixpath.dirname(path)
        while parent:
            kind = placed[parent].kind if parent in placed else base.kind(parent)
            if kind in (FILE, LINK):
                raise InvalidArgument(
                    f"COPY/ADD put /{path} under /{parent}, which is a file "
                    f"{'in the base image' if parent not in placed else 'another COPY put there'}"
                )
            parent = posixpath.dirname(parent)


def _is_archive(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(262)
    return head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar"
