"""Reading a Dockerfile: instructions, words, variables. dockerfile-parse does the lexing
(line continuations, comments, the ``escape`` directive); this module checks what it found
and offers Docker's word rules (JSON or shell form, ``--flags``, ``$VAR`` substitution).

>>> [(i.line, i.keyword, i.value) for i in parse_dockerfile("FROM scratch\\nCOPY a \\\\\\n  /b\\n")]
[(1, 'FROM', 'scratch'), (2, 'COPY', 'a   /b')]
>>> split_words('a "$X y" ${X}z', {"X": "1"})
['a', '1 y', '1z']
>>> exec_form('["sh", "-c", "echo hi"]'), exec_form("echo hi")
(['sh', '-c', 'echo hi'], None)
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter, extract_key_values
from relman_common.errors import InvalidArgument
from relman_common.vocabulary import quote

from relman_release.images.base import INVALID_DOCKERFILE

# Every instruction Docker knows; which ones a builder supports is the builder's business.
KEYWORDS = frozenset(
    {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL"}
    | {"MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)


@dataclass(frozen=True)
class Instruction:
    """One instruction: its first line (from 1), keyword (upper case) and the text after it
    (continuation lines joined)."""

    line: int
    keyword: str
    value: str

    def __str__(self) -> str:
        return f"{self.keyword} {self.value}"


def dockerfile_error(line: int, message: str) -> InvalidArgument:
    return InvalidArgument(f"Dockerfile line {line}: {message}", reason=INVALID_DOCKERFILE)


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile; an unknown instruction, one without arguments, a
    line that belongs to no instruction or a file that does not start with ``FROM`` (after
    ``ARG``\\ s) is an error naming the line."""
    parser = DockerfileParser(fileobj=io.StringIO(text), env_replace=False)
    covered: set[int] = set()
    found: list[Instruction] = []
    for item in parser.structure:
        first, last = int(item["startline"]), int(item["endline"])
        covered.update(range(first, last + 1))
        keyword = str(item["instruction"])
        if keyword == "COMMENT":
            continue
        line = first + 1
        if keyword not in KEYWORDS:
            raise dockerfile_error(line, f"unknown instruction: {quote(keyword)}")
        value = str(item["value"] or "").strip()
        if not value:
            raise dockerfile_error(line, f"{keyword} needs arguments")
        found.append(Instruction(line, keyword, value))
    for number, text_line in enumerate(text.splitlines()):
        if text_line.strip() and number not in covered:
            word = text_line.split()[0].upper()
            if word in KEYWORDS:
                raise dockerfile_error(number + 1, f"{word} needs arguments")
            raise dockerfile_error(number + 1, f"cannot read {quote(text_line.strip())}")
    for instruction in found:
        if instruction.keyword == "FROM":
            return found
        if instruction.keyword != "ARG":
            raise dockerfile_error(
                instruction.line, f"{instruction.keyword} before FROM (only ARG may come first)"
            )
    raise InvalidArgument("the Dockerfile has no FROM instruction", reason=INVALID_DOCKERFILE)


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced, quotes removed: one word."""
    return "".join(w or "" for w in WordSplitter(text, envs=dict(variables)).split(maxsplit=0))


def split_words(text: str, variables: Mapping[str, str]) -> list[str]:
    """Words split at unquoted white space, each substituted and unquoted."""
    return [w for w in WordSplitter(text, envs=dict(variables)).split() if w is not None]


def exec_form(value: str) -> list[str] | None:
    """A JSON array of strings (``["a", "b"]``), or None when ``value`` is in shell form."""
    if not value.startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(word, str) for word in parsed):
        return parsed
    return None


def take_flags(
    instruction: Instruction, words: list[str], allowed: frozenset[str]
) -> tuple[dict[str, str], list[str]]:
    """Leading ``--name=value`` words as a dict, and the words after them."""
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        if name not in allowed:
            raise dockerfile_error(
                instruction.line, f"{instruction.keyword} has no flag --{quote(name)}"
            )
        flags[name] = value
    return flags, words


def arg_names(instruction: Instruction) -> list[tuple[str, str | None]]:
    """``ARG NAME[=default] ...``: each name with its default as written (None if none)."""
    found: list[tuple[str, str | None]] = []
    for word in WordSplitter(instruction.value).split(dequote=False):
        name, eq, default = (word or "").partition("=")
        if not name:
            raise dockerfile_error(instruction.line, "ARG names an empty key")
        found.append((name, default if eq else None))
    return found


def key_values(instruction: Instruction, variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """``KEY=VALUE ...`` (or the old ``KEY VALUE``) of ENV, LABEL and ARG, substituted with
    the values before this line."""
    try:
        pairs = extract_key_values(
            env_replace=True, args={}, envs=dict(variables), instruction_value=instruction.value
        )
    except ValueError as err:
        raise dockerfile_error(instruction.line, str(err)) from None
    for key, _ in pairs:
        if not key:
            raise dockerfile_error(instruction.line, f"{instruction.keyword} names an empty key")
    return [(str(k), str(v)) for k, v in pairs]
