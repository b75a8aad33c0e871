"""What a setting is: an environment variable with a default, a help line, and — for the
programs that take it on the command line — a flag whose default is read from the variable. So
a flag given wins over the variable, and the variable wins over the built-in default. An empty
variable counts as unset. The settings themselves are listed in :mod:`relman_common.settings`.

:meth:`Setting.value` reads one variable where no parser is involved (the CLI, the secret key,
the tokens); :func:`add_flags` builds a service's flags from the settings.

>>> ttl = Setting("RELMAN_LEASE_TTL", NUMBER, 15.0, "lease seconds", rule=POSITIVE)
>>> ttl.name, ttl.shown_default, ttl.value({"RELMAN_LEASE_TTL": "20"})
('lease_ttl', '15.0', 20.0)
>>> ttl.value({"RELMAN_LEASE_TTL": "soon"})
Traceback (most recent call last):
...
ValueError: RELMAN_LEASE_TTL must be a number, not 'soon'

Only the standard library's cheapest modules are imported here (argparse only when a service
builds its parser): the CLI reads its settings through this module on every command.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

if TYPE_CHECKING:
    import argparse

T = TypeVar("T")


class Kind(NamedTuple, Generic[T]):
    """How a setting's text becomes its value. ``convert`` is also the flag's argparse
    ``type`` (so a bad flag reads ``invalid float value: 'x'`` as argparse words it);
    ``expects`` completes "RELMAN_... must be ..." for a bad variable."""

    convert: Callable[[str], T]
    expects: str


def _on_off(text: str) -> bool:
    value = text.strip().lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise ValueError(text)


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


TEXT: Kind[str] = Kind(str, "text")
# Tokens and keys: surrounding whitespace (a trailing newline from `$(cat file)`) is dropped.
SECRET: Kind[str] = Kind(str.strip, "text")
NUMBER: Kind[float] = Kind(float, "a number")
WHOLE_NUMBER: Kind[int] = Kind(int, "a whole number")
PATH: Kind[Path] = Kind(Path, "a path")
OPTIONAL_PATH: Kind[Path | None] = Kind(_optional_path, "a path")
# A switch: on/off (also true/false, yes/no, 1/0); as a flag, --name / --no-name.
SWITCH: Kind[bool] = Kind(_on_off, "on or off")


class Rule(NamedTuple):
    """A check on a number given as a flag or variable; ``--flag {says}`` when it fails."""

    holds: Callable[[float], bool]
    says: str


POSITIVE = Rule(lambda v: v > 0, "must be positive")
NOT_NEGATIVE = Rule(lambda v: v >= 0, "must not be negative")


class Setting(NamedTuple, Generic[T]):
    """One setting: the variable ``env`` (its name, lower-cased without ``RELMAN_``, is the
    setting's ``name``), its built-in ``default``, and who takes it: ``flags`` maps a program
    to its command-line flag, ``env_readers`` names programs that read the variable without
    a flag. ``unset`` says what applies when the default is empty (``plaintext``);
    ``fallback`` names a standard variable consulted when this one is unset; ``rule``
    checks the value a flag ends up with.

    Named tuples rather than dataclasses, as the cheapest classes to define: the CLI
    imports this module on every command."""

    env: str
    kind: Kind[T]
    default: T
    help: str
    flags: Mapping[str, str] = {}  # never changed
    env_readers: frozenset[str] = frozenset()
    unset: str = ""
    fallback: str = ""
    rule: Rule | None = None

    @property
    def name(self) -> str:
        """The variable without ``RELMAN_``, lower-cased: the flag's ``dest`` for most."""
        return self.env.removeprefix("RELMAN_").lower()

    @property
    def programs(self) -> frozenset[str]:
        return frozenset(self.flags) | self.env_readers

    @property
    def shown_default(self) -> str:
        """The default as the README and ``--help`` show it: ``on``/``off`` for a switch, and
        what ``unset`` says for an empty default."""
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if self.default is None or self.default == "":
            return self.unset
        return str(self.default)

    def value(self, environ: Mapping[str, str] | None = None) -> T:
        """The variable's value from ``environ`` (default ``os.environ``), else the default;
        ValueError ``RELMAN_... must be ..., not '...'`` when it cannot be read."""
        text = (os.environ if environ is None else environ).get(self.env, "")
        if not text:
            return self.default
        try:
            return self.kind.convert(text)
        except ValueError:
            raise ValueError(f"{self.env} must be {self.kind.expects}, not {text!r}") from None

    def flag_help(self, current: T) -> str:
        """``help`` ending ``(env RELMAN_..., default Y)``: Y is ``current``, the value in
        effect (so a variable that is set shows through), or what ``unset`` says."""
        env = f"{self.env}=on|off" if self.kind is SWITCH else self.env
        shown = self.unset if current is None or current == "" else "%(default)s"
        return f"{self.help} (env {env}, default {shown})" if shown else f"{self.help} (env {env})"


def add_flags(
    parser: argparse.ArgumentParser,
    program: str,
    settings: Iterable[Setting[Any]],
    *,
    choices: Mapping[str, Sequence[str]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Adds the flag of each of ``settings`` that ``program`` takes, defaulting from its
    variable in ``environ`` (default ``os.environ``). ``choices`` maps a setting's name to the
    values it allows. A variable that cannot be read, or is not one of its choices, is a usage
    error (exit 2)."""
    import argparse  # only the services pay for it, not the CLI

    for setting in settings:
        flag = setting.flags.get(program)
        if flag is None:
            continue
        try:
            default = setting.value(environ)
        except ValueError as err:
            parser.error(str(err))
        options: dict[str, Any] = {"default": default, "help": setting.flag_help(default)}
        if setting.kind is SWITCH:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = setting.kind.convert
        if choices and setting.name in choices:
            allowed = options["choices"] = choices[setting.name]
            if default not in allowed:  # argparse checks only what is given on the line
                parser.error(f"{setting.env} must be one of {', '.join(allowed)}, not {default!r}")
        parser.add_argument(flag, **options)


def check_rules(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    program: str,
    settings: Iterable[Setting[Any]],
) -> None:
    """A usage error (``--lease-ttl must be positive``) for the first flag whose value,
    given or from its variable, breaks its setting's rule."""
    for setting in settings:
        flag = setting.flags.get(program)
        if flag is None or setting.rule is None:
            continue
        dest = flag.removeprefix("--").replace("-", "_")
        if not setting.rule.holds(getattr(args, dest)):
            parser.error(f"{flag} {setting.rule.says}")
