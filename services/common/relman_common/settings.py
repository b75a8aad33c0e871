"""Every setting of the Release service, the Deployer and the CLI, defined once.

A setting is an environment variable with a default, a help line, and — for the programs
that take it on the command line — a flag whose default is read from the variable. So a flag
given wins over the variable, and the variable wins over the built-in default. An empty
variable counts as unset.

:func:`add_flags` builds a service's flags from :data:`SETTINGS`; :meth:`Setting.value` reads
one variable where no parser is involved (the CLI, the secret key, the tokens). The README's
Configuration table is checked against :data:`SETTINGS` by ``tests/test_settings_documented.py``.

Only the standard library's cheapest modules are imported here (argparse only when a service
builds its parser): the CLI reads its settings through this module on every command.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

if TYPE_CHECKING:
    import argparse

T = TypeVar("T")

# The programs that read settings.
RELEASE = "release"
DEPLOYER = "deployer"
CLI = "cli"


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
        """The variable without ``RELMAN_``, lower-cased: the flag's ``dest`` for most.

        >>> LEASE_TTL.name
        'lease_ttl'
        """
        return self.env.removeprefix("RELMAN_").lower()

    @property
    def programs(self) -> frozenset[str]:
        return frozenset(self.flags) | self.env_readers

    @property
    def shown_default(self) -> str:
        """The default as the README and ``--help`` show it.

        >>> AUTH.shown_default, LEASE_TTL.shown_default, TLS_CERT.shown_default
        ('on', '15.0', 'plaintext')
        """
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


def _flags(*programs: str, flag: str) -> dict[str, str]:
    return dict.fromkeys(programs, flag)


# In the order each program's --help lists its flags.
DEPLOYER_ADDR = Setting(
    "RELMAN_DEPLOYER_ADDR",
    TEXT,
    "127.0.0.1:50052",
    "Deployer listen address; where the CLI connects",
    flags={DEPLOYER: "--addr"},
    env_readers=frozenset({CLI}),
)
RELEASE_ADDR = Setting(
    "RELMAN_RELEASE_ADDR",
    TEXT,
    "127.0.0.1:50051",
    "Release service listen address; where the Deployer and the CLI connect",
    flags={RELEASE: "--addr", DEPLOYER: "--release-addr"},
    env_readers=frozenset({CLI}),
)
DATA_DIR = Setting(
    "RELMAN_DATA_DIR",
    PATH,
    Path(".relman"),
    "state directory: SQLite files, token files, the secret key",
    flags=_flags(RELEASE, DEPLOYER, flag="--data-dir"),
    env_readers=frozenset({CLI}),
)
DATABASE_URL = Setting(
    "RELMAN_DATABASE_URL",
    TEXT,
    "",
    "PostgreSQL instead of SQLite, e.g. postgresql://user@host/db (both services may share it)",
    flags=_flags(RELEASE, DEPLOYER, flag="--database-url"),
    unset="SQLite in the data directory",
)
BACKEND = Setting(
    "RELMAN_BACKEND",
    TEXT,
    "sim",
    "where apps run: sim (a simulated cluster) or kubernetes",
    flags={DEPLOYER: "--backend"},
)
SIM_POD_DELAY = Setting(
    "RELMAN_SIM_POD_DELAY",
    NUMBER,
    1.0,
    "sim backend: seconds from pod creation to ready",
    flags={DEPLOYER: "--sim-pod-delay"},
    rule=NOT_NEGATIVE,
)
KUBECONFIG = Setting(
    "RELMAN_KUBECONFIG",
    TEXT,
    "",
    "kubernetes backend: kubeconfig file",
    flags={DEPLOYER: "--kubeconfig"},
    unset="$KUBECONFIG, then in-cluster config, then ~/.kube/config",
    fallback="KUBECONFIG",
)
KUBE_CONTEXT = Setting(
    "RELMAN_KUBE_CONTEXT",
    TEXT,
    "",
    "kubernetes backend: kubeconfig context",
    flags={DEPLOYER: "--kube-context"},
    unset="the kubeconfig's current context",
)
NAMESPACE_PREFIX = Setting(
    "RELMAN_NAMESPACE_PREFIX",
    TEXT,
    "relman",
    "namespaces are <prefix>-<app>",
    flags={DEPLOYER: "--namespace-prefix"},
)
LEASE_TTL = Setting(
    "RELMAN_LEASE_TTL",
    NUMBER,
    15.0,
    "seconds a deployment's lease lives without renewal",
    flags={DEPLOYER: "--lease-ttl"},
    rule=POSITIVE,
)
CRASHLOOP_THRESHOLD = Setting(
    "RELMAN_CRASHLOOP_THRESHOLD",
    WHOLE_NUMBER,
    3,
    "container restarts that count as a crash loop",
    flags={DEPLOYER: "--crashloop-threshold"},
)
DEFAULT_TIMEOUT = Setting(
    "RELMAN_DEFAULT_TIMEOUT",
    WHOLE_NUMBER,
    600,
    "progress deadline in seconds when a request gives none",
    flags={DEPLOYER: "--default-timeout"},
    rule=POSITIVE,
)
AUTH = Setting(
    "RELMAN_AUTH",
    SWITCH,
    True,
    "demand a token (authorization: Bearer rmt_...) on every call but health checks; the "
    "Release service's first start creates <data-dir>/admin.token and deployer.token",
    flags=_flags(RELEASE, DEPLOYER, flag="--auth"),
)
TOKEN = Setting(
    "RELMAN_TOKEN",
    SECRET,
    "",
    "the CLI's API token",
    env_readers=frozenset({CLI}),
    unset="the rack's token, else (without a rack) <data-dir>/admin.token",
)
DEPLOYER_TOKEN = Setting(
    "RELMAN_DEPLOYER_TOKEN",
    SECRET,
    "",
    "the Deployer's service token for the Release service (a variable only: flags show in ps)",
    env_readers=frozenset({DEPLOYER}),
    unset="read from the token file",
)
DEPLOYER_TOKEN_FILE = Setting(
    "RELMAN_DEPLOYER_TOKEN_FILE",
    OPTIONAL_PATH,
    None,
    "file holding the Deployer's service token, read when first needed; RELMAN_DEPLOYER_TOKEN "
    "gives the token itself",
    flags={DEPLOYER: "--token-file"},
    unset="<data-dir>/deployer.token",
)
TLS_CERT = Setting(
    "RELMAN_TLS_CERT",
    TEXT,
    "",
    "serve TLS with this PEM certificate; needs --tls-key",
    flags=_flags(RELEASE, DEPLOYER, flag="--tls-cert"),
    unset="plaintext",
)
TLS_KEY = Setting(
    "RELMAN_TLS_KEY",
    TEXT,
    "",
    "PEM private key of --tls-cert",
    flags=_flags(RELEASE, DEPLOYER, flag="--tls-key"),
    unset="plaintext",
)
TLS_CLIENT_CA = Setting(
    "RELMAN_TLS_CLIENT_CA",
    TEXT,
    "",
    "require client certificates signed by this PEM CA: mutual TLS",
    flags=_flags(RELEASE, DEPLOYER, flag="--tls-client-ca"),
    unset="no client certificates asked",
)
TLS_CA = Setting(
    "RELMAN_TLS_CA",
    TEXT,
    "",
    "reach the services over TLS, trusting this PEM CA",
    flags={DEPLOYER: "--release-tls-ca"},
    env_readers=frozenset({CLI}),
    unset="plaintext",
)
TLS_CLIENT_CERT = Setting(
    "RELMAN_TLS_CLIENT_CERT",
    TEXT,
    "",
    "client certificate for services with mutual TLS; needs its key",
    flags={DEPLOYER: "--release-tls-client-cert"},
    env_readers=frozenset({CLI}),
    unset="none",
)
TLS_CLIENT_KEY = Setting(
    "RELMAN_TLS_CLIENT_KEY",
    TEXT,
    "",
    "PEM key of the client certificate",
    flags={DEPLOYER: "--release-tls-client-key"},
    env_readers=frozenset({CLI}),
    unset="none",
)
SECRET_KEY = Setting(
    "RELMAN_SECRET_KEY",
    SECRET,
    "",
    "the key that seals env values at rest: base64 of 32 bytes (a variable only: flags show in ps)",
    env_readers=frozenset({RELEASE}),
    unset="read from the secret key file",
)
SECRET_KEY_FILE = Setting(
    "RELMAN_SECRET_KEY_FILE",
    OPTIONAL_PATH,
    None,
    "file holding the base64 key that seals env values at rest; wins over RELMAN_SECRET_KEY",
    flags={RELEASE: "--secret-key-file"},
    unset="RELMAN_SECRET_KEY, else <data-dir>/secret.key, created on first start",
)
BUILDER = Setting(
    "RELMAN_BUILDER",
    TEXT,
    "local",
    "how builds make images: local (no daemon; images in the registry or the data dir) or "
    "docker (a Docker Engine API at DOCKER_HOST; needs RELMAN_REGISTRY)",
    flags={RELEASE: "--builder"},
)
REGISTRY = Setting(
    "RELMAN_REGISTRY",
    TEXT,
    "",
    "where built images go: a registry host[:port][/prefix] (OCI distribution API)",
    flags={RELEASE: "--registry"},
    unset="an OCI image layout in <data-dir>/images (local builder)",
)
REGISTRY_USERNAME = Setting(
    "RELMAN_REGISTRY_USERNAME",
    TEXT,
    "",
    "user name for RELMAN_REGISTRY",
    flags={RELEASE: "--registry-username"},
    unset="none: anonymous",
)
REGISTRY_PASSWORD = Setting(
    "RELMAN_REGISTRY_PASSWORD",
    SECRET,
    "",
    "password or token for RELMAN_REGISTRY_USERNAME (a variable only: flags show in ps)",
    env_readers=frozenset({RELEASE}),
    unset="none",
)
DOCKER_HOST = Setting(
    "DOCKER_HOST",
    TEXT,
    "",
    "docker builder: the Docker Engine API, e.g. unix:///run/docker.sock or tcp://host:2375",
    flags={RELEASE: "--docker-host"},
    unset="Docker's default socket",
)
BUILD_CONCURRENCY = Setting(
    "RELMAN_BUILD_CONCURRENCY",
    WHOLE_NUMBER,
    2,
    "builds run at once by one Release service; more wait their turn",
    flags={RELEASE: "--build-concurrency"},
    rule=POSITIVE,
)
BUILD_HEARTBEAT_TTL = Setting(
    "RELMAN_BUILD_HEARTBEAT_TTL",
    NUMBER,
    15.0,
    "seconds a build lives without its runner's heartbeat before it is failed as interrupted",
    flags={RELEASE: "--build-heartbeat-ttl"},
    rule=POSITIVE,
)
SOURCE_MAX_BYTES = Setting(
    "RELMAN_SOURCE_MAX_BYTES",
    WHOLE_NUMBER,
    2 * 1024**3,
    "largest source archive accepted, compressed and unpacked, in bytes",
    flags={RELEASE: "--source-max-bytes"},
    rule=POSITIVE,
)
SOURCE_MAX_ENTRIES = Setting(
    "RELMAN_SOURCE_MAX_ENTRIES",
    WHOLE_NUMBER,
    100_000,
    "most files, directories and links a source archive may hold",
    flags={RELEASE: "--source-max-entries"},
    rule=POSITIVE,
)
APP = Setting(
    "RELMAN_APP",
    TEXT,
    "",
    "the CLI's app when -a is not given",
    env_readers=frozenset({CLI}),
    unset="none: commands need -a",
)
RACK = Setting(
    "RELMAN_RACK",
    TEXT,
    "",
    "the CLI's rack (from ~/.config/relman/racks.yml) when -r is not given",
    env_readers=frozenset({CLI}),
    unset="none: RELMAN_RELEASE_ADDR and RELMAN_DEPLOYER_ADDR",
)

SETTINGS: tuple[Setting[Any], ...] = (
    DEPLOYER_ADDR,
    RELEASE_ADDR,
    DATA_DIR,
    DATABASE_URL,
    BACKEND,
    SIM_POD_DELAY,
    KUBECONFIG,
    KUBE_CONTEXT,
    NAMESPACE_PREFIX,
    LEASE_TTL,
    CRASHLOOP_THRESHOLD,
    DEFAULT_TIMEOUT,
    AUTH,
    TOKEN,
    DEPLOYER_TOKEN,
    DEPLOYER_TOKEN_FILE,
    TLS_CERT,
    TLS_KEY,
    TLS_CLIENT_CA,
    TLS_CA,
    TLS_CLIENT_CERT,
    TLS_CLIENT_KEY,
    SECRET_KEY,
    SECRET_KEY_FILE,
    BUILDER,
    REGISTRY,
    REGISTRY_USERNAME,
    REGISTRY_PASSWORD,
    DOCKER_HOST,
    BUILD_CONCURRENCY,
    BUILD_HEARTBEAT_TTL,
    SOURCE_MAX_BYTES,
    SOURCE_MAX_ENTRIES,
    APP,
    RACK,
)


def add_flags(
    parser: argparse.ArgumentParser,
    program: str,
    *,
    choices: Mapping[str, Sequence[str]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Adds every flag ``program`` takes, each defaulting from its variable in ``environ``
    (default ``os.environ``). ``choices`` maps a setting's name to the values it allows.
    A variable that cannot be read, or is not one of its choices, is a usage error (exit 2)."""
    import argparse  # only the services pay for it, not the CLI

    for setting in SETTINGS:
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


def check_rules(parser: argparse.ArgumentParser, args: argparse.Namespace, program: str) -> None:
    """A usage error (``--lease-ttl must be positive``) for the first flag whose value,
    given or from its variable, breaks its setting's rule."""
    for setting in SETTINGS:
        flag = setting.flags.get(program)
        if flag is None or setting.rule is None:
            continue
        dest = flag.removeprefix("--").replace("-", "_")
        if not setting.rule.holds(getattr(args, dest)):
            parser.error(f"{flag} {setting.rule.says}")
