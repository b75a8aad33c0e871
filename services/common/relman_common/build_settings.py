"""The settings of builds from source: builder, registry, limits (part of
:data:`relman_common.settings.SETTINGS`)."""

from __future__ import annotations

from relman_common.setting import (
    NUMBER,
    POSITIVE,
    SECRET,
    TEXT,
    WHOLE_NUMBER,
    Setting,
)
from relman_common.settings_programs import RELEASE

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
