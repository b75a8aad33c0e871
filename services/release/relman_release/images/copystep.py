"""COPY and ADD as the local builder reads them: sources, destination, ``--chown`` (numeric
ids) and ``--chmod``. ``--from`` (another stage or image), URLs and git sources need a
builder that fetches: the docker builder.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass

from relman_common.errors import FailedPrecondition
from relman_common.vocabulary import quote

from relman_release.images.base import UNSUPPORTED_INSTRUCTION, USE_DOCKER
from relman_release.images.dockerfile import (
    Instruction,
    dockerfile_error,
    exec_form,
    split_words,
    substitute,
    take_flags,
)

_COPY_FLAGS = frozenset({"chown", "chmod", "from", "link"})


@dataclass(frozen=True)
class CopyStep:
    """One COPY/ADD: context paths (may hold wildcards) to an absolute image path."""

    line: int
    keyword: str
    sources: tuple[str, ...]
    dest: str
    # The destination is written as a directory ("dir/" or ".").
    into_dir: bool
    owner: tuple[int, int] | None = None
    mode: int | None = None


def copy_step(ins: Instruction, variables: Mapping[str, str], workdir: str) -> CopyStep:
    """A COPY or ADD instruction, its words substituted with ``variables``."""
    raw = ins.value
    flag_words: list[str] = []
    while raw.startswith("--"):
        word, _, raw = raw.partition(" ")
        flag_words.append(substitute(word, variables))
        raw = raw.lstrip()
    flags, _ = take_flags(ins, flag_words, _COPY_FLAGS)
    if "from" in flags:
        raise FailedPrecondition(
            f"Dockerfile line {ins.line}: {ins.keyword} --from copies from another stage or "
            f"image, which the local builder does not do: {USE_DOCKER}",
            reason=UNSUPPORTED_INSTRUCTION,
        )
    listed = exec_form(raw)
    if listed is not None:
        words = [substitute(word, variables) for word in listed]
    else:
        words = split_words(raw, variables)
    if len(words) < 2:
        raise dockerfile_error(ins.line, f"{ins.keyword} needs a source and a destination")
    *sources, dest = words
    if ins.keyword == "ADD":
        _refuse_remote(ins, sources)
    # As BuildKit has it: "dir/", "." and "" name a directory.
    into_dir = dest.endswith("/") or dest in (".", "")
    return CopyStep(
        line=ins.line,
        keyword=ins.keyword,
        sources=tuple(sources),
        dest=posixpath.normpath(posixpath.join(workdir, dest)),
        into_dir=into_dir,
        owner=_owner(ins, flags["chown"]) if flags.get("chown") else None,
        mode=_mode(ins, flags["chmod"]) if flags.get("chmod") else None,
    )


def _refuse_remote(ins: Instruction, sources: list[str]) -> None:
    for source in sources:
        if "://" in source or source.startswith("git@"):
            raise FailedPrecondition(
                f"Dockerfile line {ins.line}: ADD {quote(source)}: the local builder adds only "
                "files of the build context; download it into the context and COPY it, or "
                f"{USE_DOCKER}",
                reason=UNSUPPORTED_INSTRUCTION,
            )


def _owner(ins: Instruction, text: str) -> tuple[int, int]:
    user, _, group = text.partition(":")
    if not user.isdigit() or (group and not group.isdigit()):
        raise FailedPrecondition(
            f"Dockerfile line {ins.line}: --chown={quote(text)}: the local builder takes numeric "
            f"ids only (--chown=1000:1000), it does not read the image's /etc/passwd; or "
            f"{USE_DOCKER}",
            reason=UNSUPPORTED_INSTRUCTION,
        )
    return int(user), int(group or user)


def _mode(ins: Instruction, text: str) -> int:
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise dockerfile_error(ins.line, f"--chmod={quote(text)}: expected octal bits like 755")
    return int(text, 8)
