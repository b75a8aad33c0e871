"""What a Dockerfile asks of the local builder: its base, the image config the instructions
make, and where COPY/ADD put the context's files. Pure: nothing is read or fetched here.

Docker's rules, for the instructions the local builder supports: ``ARG`` before ``FROM``
serves ``FROM`` only (a stage's ``ARG NAME`` without a default takes it up), a build arg
overrides a default, ``ENV`` overrides ``ARG`` in ``$NAME`` substitution, ``ENTRYPOINT``
clears a ``CMD`` that came from the base, shell forms run under ``/bin/sh -c``, relative
paths follow ``WORKDIR``. An image without ``PATH`` gets Docker's default one.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relman_common.errors import FailedPrecondition
from relman_common.vocabulary import quote

from relman_release.images.base import UNSUPPORTED_INSTRUCTION, USE_DOCKER
from relman_release.images.copystep import CopyStep, copy_step
from relman_release.images.dockerfile import (
    Instruction,
    arg_names,
    dockerfile_error,
    exec_form,
    key_values,
    split_words,
    substitute,
    take_flags,
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PORT = re.compile(r"(\d{1,5})(?:/(tcp|udp|sctp))?")


@dataclass(frozen=True)
class Base:
    """``FROM``: ``scratch`` or an image name (ARGs substituted), and its ``--platform``."""

    line: int
    image: str
    platform: str = ""


@dataclass
class Recipe:
    """The image the instructions after ``FROM`` describe."""

    config: dict[str, Any]
    copies: list[CopyStep] = field(default_factory=list)
    # Every WORKDIR, in order: the layer holds them as directories.
    workdirs: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    unused_args: list[str] = field(default_factory=list)


def read_base(instructions: list[Instruction], build_args: Mapping[str, str]) -> Base:
    """The ``FROM`` of a single-stage Dockerfile, with the ARGs before it substituted."""
    froms = [i for i in instructions if i.keyword == "FROM"]
    if len(froms) > 1:
        lines = ", ".join(str(i.line) for i in froms)
        raise FailedPrecondition(
            f"a multi-stage Dockerfile (FROM on lines {lines}) needs a builder that runs "
            f"stages: {USE_DOCKER}",
            reason=UNSUPPORTED_INSTRUCTION,
        )
    first = froms[0]
    words = split_words(first.value, global_args(instructions, build_args))
    flags, words = take_flags(first, words, frozenset({"platform"}))
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise dockerfile_error(first.line, "expected FROM [--platform=P] image [AS name]")
    return Base(first.line, words[0], flags.get("platform", ""))


def log_preamble(instructions: list[Instruction], log: Callable[[str], None]) -> None:
    """``Step n/N : ...`` for the instructions up to ``FROM``."""
    for step, instruction in enumerate(instructions, 1):
        log(f"Step {step}/{len(instructions)} : {instruction}")
        if instruction.keyword == "FROM":
            return


def global_args(instructions: list[Instruction], build_args: Mapping[str, str]) -> dict[str, str]:
    """The ARGs before ``FROM`` with their values."""
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword != "ARG":
            break
        for name, default in arg_names(instruction):
            if name in build_args:
                values[name] = build_args[name]
            else:
                values[name] = substitute(default, values) if default is not None else ""
    return values


class _Stage:
    def __init__(self, base_config: Mapping[str, Any], build_args: Mapping[str, str]) -> None:
        self.recipe = Recipe(config=dict(base_config))
        self.env: dict[str, str] = dict(
            item.split("=", 1) for item in base_config.get("Env") or [] if "=" in item
        )
        self.args: dict[str, str] = {}
        self.build_args = build_args
        self.used: set[str] = set()
        self.cmd_set = False

    @property
    def variables(self) -> dict[str, str]:
        return {**self.args, **self.env}

    @property
    def workdir(self) -> str:
        return str(self.recipe.config.get("WorkingDir") or "/")


def apply(
    instructions: list[Instruction],
    base_config: Mapping[str, Any],
    build_args: Mapping[str, str],
    log: Callable[[str], None],
) -> Recipe:
    """Run the whole Dockerfile's instructions (a single stage) over the base's config,
    logging ``Step n/N : ...`` for each after ``FROM`` (:func:`log_preamble` logs those
    before)."""
    stage = _Stage(base_config, build_args)
    known = global_args(instructions, build_args)
    stage.used.update(known)
    staged = False
    for step, instruction in enumerate(instructions, 1):
        if not staged:
            # The ARGs before FROM, and FROM: read_base and global_args took them.
            staged = instruction.keyword == "FROM"
            continue
        log(f"Step {step}/{len(instructions)} : {instruction}")
        handler = _HANDLERS.get(instruction.keyword)
        if handler is None:
            raise FailedPrecondition(
                f"Dockerfile line {instruction.line}: the local builder does not support "
                f"{instruction.keyword} (it runs nothing and keeps only COPY/ADD, ARG, ENV, "
                f"WORKDIR, USER, EXPOSE, LABEL, CMD and ENTRYPOINT): {USE_DOCKER}",
                reason=UNSUPPORTED_INSTRUCTION,
            )
        handler(stage, instruction, known)
        stage.recipe.history.append(str(instruction))
    if "PATH" not in stage.env:
        stage.env["PATH"] = DEFAULT_PATH
    stage.recipe.config["Env"] = [f"{k}={v}" for k, v in stage.env.items()]
    stage.recipe.unused_args = sorted(set(build_args) - stage.used)
    return stage.recipe


def _arg(stage: _Stage, ins: Instruction, known: dict[str, str]) -> None:
    for name, default in arg_names(ins):
        stage.used.add(name)
        if name in stage.build_args:
            stage.args[name] = stage.build_args[name]
        elif default is None:
            stage.args[name] = known.get(name, "")
        else:
            stage.args[name] = substitute(default, stage.variables)


def _env(stage: _Stage, ins: Instruction, known: dict[str, str]) -> None:
    stage.env.update(key_values(ins, stage.variables))


def _label(stage: _Stage, ins: Instruction, known: dict[str, str]) -> None:
    labels = dict(stage.recipe.config.get("Labels") or {})
    labels.update(key_values(ins, stage.variables))
    stage.recipe.config["Labels"] = labels


def _workdir(stage: _Stage, ins: Instruction, known: dict[str, str]) -> None:
    path = posixpath.normpath(posixpath.join(stage.workdir, substitute(ins.value, stage.variables)))
    stage.recipe.config["WorkingDir"] = path
    stage.recipe.workdirs.append(path)


def _user(stage: _Stage, ins: Instruction, known: dict[str, str]) -> None:
    stage.recipe.config["User"] = substitute(ins.value, stage.variables)


def _copy(stage: _Stage, ins: Instruction, known: dict[str, str]) -> None:
    stage.recipe.copies.append(copy_step(ins, stage.variables, stage.workdir))


def _expose(stage: _Stage, ins: Instruction, known: dict[str, str]) -> None:
    ports = dict(stage.recipe.config.get("ExposedPorts") or {})
    for word in split_words(ins.value, stage.variables):
        match = _PORT.fullmatch(word.lower())
        if not match or not 0 < int(match[1]) < 65536:
            raise dockerfile_error(ins.line, f"EXPOSE: not a port[/tcp|udp|sctp]: {quote(word)}")
        ports[f"{int(match[1])}/{match[2] or 'tcp'}"] = {}
    stage.recipe.config["ExposedPorts"] = ports


def _command(stage: _Stage, ins: Instruction, known: dict[str, str]) -> None:
    words = exec_form(ins.value)
    command = words if words is not None else ["/bin/sh", "-c", ins.value]
    if ins.keyword == "CMD":
        stage.recipe.config["Cmd"] = command
        stage.cmd_set = True
        return
    stage.recipe.config["Entrypoint"] = command
    if not stage.cmd_set:
        stage.recipe.config.pop("Cmd", None)


_HANDLERS: dict[str, Callable[[_Stage, Instruction, dict[str, str]], None]] = {
    "ARG": _arg,
    "ENV": _env,
    "LABEL": _label,
    "WORKDIR": _workdir,
    "USER": _user,
    "EXPOSE": _expose,
    "CMD": _command,
    "ENTRYPOINT": _command,
    "COPY": _copy,
    "ADD": _copy,
}
