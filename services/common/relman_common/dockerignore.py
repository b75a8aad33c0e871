""".dockerignore, read and matched as Docker reads and matches it: the one copy, used by the
CLI when it packages a source directory and by the local builder when COPY takes files from
a build context (files the CLI always sends, such as the Dockerfile, stay out of COPY when
``.dockerignore`` names them, as with ``docker build``).

Matching is the Docker SDK for Python's own (``**``, ``!`` exceptions, a pattern naming a
directory excludes all of it), made case-sensitive as the Docker engine is on Linux.
"""

from __future__ import annotations

from pathlib import Path

from docker.utils.build import Pattern, PatternMatcher, normalize_slashes
from docker.utils.fnmatch import fnmatchcase

DOCKERIGNORE = ".dockerignore"
_UTF8_BOM = "\ufeff"


def ignore_patterns(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file, read as Docker reads it.

    A line starting with ``#`` is a comment (only in the first column); surrounding spaces go;
    blank lines go; a leading ``/`` means the context's root, as every pattern is relative to
    it anyway. (Cleaning ``.`` and ``..`` is the matcher's job.)

    >>> ignore_patterns("# deps\\nnode_modules\\n  /build/ \\n\\n! build/keep\\n")
    ['node_modules', 'build/', '!build/keep']
    """
    patterns = []
    for number, raw in enumerate(text.splitlines()):
        line = raw.removeprefix(_UTF8_BOM) if number == 0 else raw
        if line.startswith("#"):
            continue
        line = line.strip()
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        if len(line) > 1:
            line = line.lstrip("/") or "/"
        if line or exception:
            patterns.append(f"!{line}" if exception else line)
    return patterns


def read_patterns(root: Path) -> list[str]:
    """The patterns of ``root/.dockerignore`` ([] when there is none); OSError and
    UnicodeDecodeError when it cannot be read."""
    try:
        text = (root / DOCKERIGNORE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return ignore_patterns(text)


class _Pattern(Pattern):
    """One pattern, matched case-sensitively as the Docker engine matches on Linux (the SDK's
    ``fnmatch`` lowers both sides)."""

    def match(self, filepath: str) -> bool:
        return bool(fnmatchcase(normalize_slashes(filepath), self.cleaned_pattern))


class IgnoreMatcher(PatternMatcher):
    """The SDK's matcher (its walk, its rules for exceptions) with case-sensitive patterns."""

    def __init__(self, patterns: list[str], *, send_dockerignore: bool = True) -> None:
        """``send_dockerignore``: the SDK always keeps ``.dockerignore`` itself (a client must
        send it); a builder choosing what COPY sees passes False, so a ``.dockerignore`` that
        names itself stays out of the image, as with ``docker build``."""
        super().__init__(patterns)
        if not send_dockerignore and f"!{DOCKERIGNORE}" not in patterns:
            self.patterns = [
                p for p in self.patterns if not (p.exclusion and p.cleaned_pattern == DOCKERIGNORE)
            ]
        self.patterns = [
            _Pattern(("!" if p.exclusion else "") + p.cleaned_pattern) for p in self.patterns
        ]

        self.exceptions = [p.cleaned_pattern for p in self.patterns if p.exclusion]
        # Only a pattern that is not an exception excludes anything.
        self.excludes_any = any(not p.exclusion for p in self.patterns)

    def excludes(self, path: str) -> bool:
        """Whether ``path`` (relative, ``/``-separated) stays out of the archive."""
        return self.excludes_any and bool(self.matches(path))  # type: ignore[arg-type]

    def looks_inside(self, directory: str, excluded: bool) -> bool:
        """Whether a walk goes into ``directory`` (``excluded`` is what :meth:`excludes` said
        of it): always unless excluded, and then only when an exception may keep something
        in it (the SDK's rule)."""
        return not excluded or any(p.startswith(directory) for p in self.exceptions)
