"""Every setting of the Release service, the Deployer and the CLI, defined once.

Each is a :class:`~relman_common.setting.Setting`: its variable, kind, default and help, and
the programs that take it as a flag or read the variable. ``addflags_of(parser, program,
SETTINGS)`` builds a service's flags from :data:`SETTINGS`; the README's Configuration table is
checked against it by ``tests/unit/test_settings_documented.py``.

>>> LEASE_TTL.name, LEASE_TTL.flags[DEPLOYER], LEASE_TTL.shown_default
('lease_ttl', '--lease-ttl', '15.0')
>>> AUTH.shown_default, TLS_CERT.shown_default
('on', 'plaintext')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relman_common.build_settings import (
    BUILD_CONCURRENCY,
    BUILD_HEARTBEAT_TTL,
    BUILDER,
    DOCKER_HOST,
    REGISTRY,
    REGISTRY_PASSWORD,
    REGISTRY_USERNAME,
    SOURCE_MAX_BYTES,
    SOURCE_MAX_ENTRIES,
)
from relman_common.deployer_settings import (
    BACKEND,
    CRASHLOOP_THRESHOLD,
    DEFAULT_TIMEOUT,
    KUBE_CONTEXT,
    KUBECONFIG,
    LEASE_TTL,
    NAMESPACE_PREFIX,
    SCHEDULING_GRACE,
    SIM_POD_DELAY,
)
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
from relman_common.settings_programs import CLI, DEPLOYER, RELEASE, flags_of

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
RETRY_SECONDS = Setting(
    "RELMAN_RETRY_SECONDS",
    NUMBER,
    30.0,
    "how long the CLI and the Deployer retry an UNAVAILABLE service, with backoff, over "
    "every address it has",
    flags={DEPLOYER: "--retry-seconds"},
    env_readers=frozenset({CLI}),
    rule=NOT_NEGATIVE,
)
DATA_DIR = Setting(
    "RELMAN_DATA_DIR",
    PATH,
    Path(".relman"),
    "state directory: SQLite files, token files, the secret key",
    flags=flags_of(RELEASE, DEPLOYER, flag="--data-dir"),
    env_readers=frozenset({CLI}),
)
DATABASE_URL = Setting(
    "RELMAN_DATABASE_URL",
    TEXT,
    "",
    "PostgreSQL instead of SQLite, e.g. postgresql://user@host/db (both services may share it)",
    flags=flags_of(RELEASE, DEPLOYER, flag="--database-url"),
    unset="SQLite in the data directory",
)
AUTH = Setting(
    "RELMAN_AUTH",
    SWITCH,
    True,
    "demand a token (authorization: Bearer rmt_...) on every call but health checks; the "
    "Release service's first start creates <data-dir>/admin.token and deployer.token",
    flags=flags_of(RELEASE, DEPLOYER, flag="--auth"),
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
    flags=flags_of(RELEASE, DEPLOYER, flag="--tls-cert"),
    unset="plaintext",
)
TLS_KEY = Setting(
    "RELMAN_TLS_KEY",
    TEXT,
    "",
    "PEM private key of --tls-cert",
    flags=flags_of(RELEASE, DEPLOYER, flag="--tls-key"),
    unset="plaintext",
)
TLS_CLIENT_CA = Setting(
    "RELMAN_TLS_CLIENT_CA",
    TEXT,
    "",
    "require client certificates signed by this PEM CA: mutual TLS",
    flags=flags_of(RELEASE, DEPLOYER, flag="--tls-client-ca"),
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
BOOTSTRAP_TOKENS_DIR = Setting(
    "RELMAN_BOOTSTRAP_TOKENS_DIR",
    OPTIONAL_PATH,
    None,
    "a directory holding admin.token and deployer.token (e.g. a mounted Kubernetes Secret): "
    "the first start stores these two secrets instead of making new ones; ignored once tokens "
    "exist",
    flags={RELEASE: "--bootstrap-tokens-dir"},
    unset="the first start makes two new random tokens",
)
KEEP_RELEASES = Setting(
    "RELMAN_KEEP_RELEASES",
    WHOLE_NUMBER,
    0,
    "after each new release, prune the app to this many releases (as relman releases prune "
    "--keep N: the active, the previous active, pinned and deploying ones always stay); 0: never",
    flags={RELEASE: "--keep-releases"},
    rule=NOT_NEGATIVE,
)
WEBHOOK_TIMEOUT = Setting(
    "RELMAN_WEBHOOK_TIMEOUT",
    NUMBER,
    10.0,
    "seconds a webhook receiver has to answer a delivery before the attempt counts as failed "
    "(and is retried)",
    flags={RELEASE: "--webhook-timeout"},
    rule=POSITIVE,
)
WEBHOOK_HISTORY_DAYS = Setting(
    "RELMAN_WEBHOOK_HISTORY_DAYS",
    NUMBER,
    7.0,
    "days a webhook event's deliveries are kept (for relman webhooks deliveries) once delivered "
    "or given up: then they, their attempts and the event are deleted, in batches; 0: kept forever",
    flags={RELEASE: "--webhook-history-days"},
    rule=NOT_NEGATIVE,
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
    RETRY_SECONDS,
    DATA_DIR,
    DATABASE_URL,
    BACKEND,
    SIM_POD_DELAY,
    KUBECONFIG,
    KUBE_CONTEXT,
    NAMESPACE_PREFIX,
    LEASE_TTL,
    CRASHLOOP_THRESHOLD,
    SCHEDULING_GRACE,
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
    BOOTSTRAP_TOKENS_DIR,
    BUILDER,
    REGISTRY,
    REGISTRY_USERNAME,
    REGISTRY_PASSWORD,
    DOCKER_HOST,
    BUILD_CONCURRENCY,
    BUILD_HEARTBEAT_TTL,
    SOURCE_MAX_BYTES,
    SOURCE_MAX_ENTRIES,
    KEEP_RELEASES,
    WEBHOOK_TIMEOUT,
    WEBHOOK_HISTORY_DAYS,
    APP,
    RACK,
)

__all__ = [
    "APP",
    "AUTH",
    "BACKEND",
    "BOOTSTRAP_TOKENS_DIR",
    "BUILDER",
    "BUILD_CONCURRENCY",
    "BUILD_HEARTBEAT_TTL",
    "CLI",
    "CRASHLOOP_THRESHOLD",
    "DATABASE_URL",
    "DATA_DIR",
    "DEFAULT_TIMEOUT",
    "DEPLOYER",
    "DEPLOYER_ADDR",
    "DEPLOYER_TOKEN",
    "DEPLOYER_TOKEN_FILE",
    "DOCKER_HOST",
    "KEEP_RELEASES",
    "KUBECONFIG",
    "KUBE_CONTEXT",
    "LEASE_TTL",
    "NAMESPACE_PREFIX",
    "RACK",
    "REGISTRY",
    "REGISTRY_PASSWORD",
    "REGISTRY_USERNAME",
    "RELEASE",
    "RELEASE_ADDR",
    "RETRY_SECONDS",
    "SCHEDULING_GRACE",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "SETTINGS",
    "SIM_POD_DELAY",
    "SOURCE_MAX_BYTES",
    "SOURCE_MAX_ENTRIES",
    "TLS_CA",
    "TLS_CERT",
    "TLS_CLIENT_CA",
    "TLS_CLIENT_CERT",
    "TLS_CLIENT_KEY",
    "TLS_KEY",
    "TOKEN",
    "WEBHOOK_HISTORY_DAYS",
    "WEBHOOK_TIMEOUT",
]
