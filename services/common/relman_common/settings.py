"""Every setting of the Release service, the Deployer and the CLI, defined once.

Each is a :class:`~relman_common.setting.Setting`: its variable, kind, default and help, and
the programs that take it as a flag or read the variable. ``add_flags(parser, program,
SETTINGS)`` builds a service's flags from :data:`SETTINGS`; the README's Configuration table is
checked against it by ``tests/test_settings_documented.py``.

>>> LEASE_TTL.name, LEASE_TTL.flags[DEPLOYER], LEASE_TTL.shown_default
('lease_ttl', '--lease-ttl', '15.0')
>>> AUTH.shown_default, TLS_CERT.shown_default
('on', 'plaintext')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relman_common.setting import (
    NOT_NEGATIVE,
    NUMBER,
    OPTIONAL_PATH,
    PATH,
    POSITIVE,
    SECRET,
    SWITCH,
    TEXT,
    WHOLE_NUMBER,
    Setting,
)

# The programs that read settings.
RELEASE = "release"
DEPLOYER = "deployer"
CLI = "cli"


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
