"""The manifest as immutable values: the whole convox.yml subset of SPEC 2.

The Release service builds these from YAML (:mod:`relman_common.manifest.parser`); the
Deployer gets the same values from ``ServiceSpec`` messages
(:mod:`relman_common.manifest.proto`), with each service's image resolved. Nothing here
parses or talks to anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

HTTP = "http"
HTTPS = "https"

DEFAULT_MINIMUM = 50
DEFAULT_MAXIMUM = 200
DEFAULT_TERMINATION_GRACE = 30
DEFAULT_RELEASE_TIMEOUT = 600
# A release command's longest timeout: one day (the wire carries it as an int32).
MAX_RELEASE_TIMEOUT = 86400


@dataclass(frozen=True)
class EnvSpec:
    """An ``environment:`` entry: ``KEY`` (required) or ``KEY=default``."""

    key: str
    default: str | None = None


@dataclass(frozen=True)
class Health:
    path: str = "/"
    grace: int = 5
    interval: int = 5
    timeout: int = 4


@dataclass(frozen=True)
class Port:
    """``port: 5000`` / ``http:5000`` / ``https:5443`` (the container itself speaks TLS)."""

    number: int
    scheme: str = HTTP


@dataclass(frozen=True)
class Scale:
    """``scale: {count: 2}`` or ``{count: "1-4"}`` (``count`` runs; ``max`` is the top of a
    range), with the cpu (millicores) and memory (MB) of one replica, 0 when not set."""

    count: int = 1
    max: int = 1
    cpu: int = 0
    memory: int = 0


@dataclass(frozen=True)
class BuildSpec:
    """``build: .`` or ``build: {path: ., manifest: Dockerfile.web}``."""

    path: str = "."
    manifest: str = "Dockerfile"


@dataclass(frozen=True)
class Service:
    name: str
    # The manifest's ``image:``; for a deployable service, the image to run.
    image: str = ""
    build: BuildSpec | None = None
    # argv; a string command is split as a shell would. Empty: the image's default.
    command: tuple[str, ...] = ()
    port: Port | None = None
    ports: tuple[int, ...] = ()
    health: Health = field(default_factory=Health)
    scale: Scale = field(default_factory=Scale)
    # The app's environment entries, then the service's own (which win for the same key).
    environment: tuple[EnvSpec, ...] = ()
    # Percent of replicas: maxUnavailable = 100 - minimum, maxSurge = maximum - 100.
    minimum: int = DEFAULT_MINIMUM
    maximum: int = DEFAULT_MAXIMUM
    termination_grace: int = DEFAULT_TERMINATION_GRACE
    internal: bool = False

    @property
    def needs_built_image(self) -> bool:
        """A service that uses ``build:`` or names no ``image:`` runs the build's image."""
        return self.build is not None or not self.image

    @property
    def replicas(self) -> int:
        return self.scale.count

    @property
    def max_unavailable_percent(self) -> int:
        return 100 - self.minimum

    @property
    def max_surge_percent(self) -> int:
        return self.maximum - 100

    def env_defaults(self, env: Mapping[str, str]) -> dict[str, str]:
        """Defaults of this service's environment for the keys ``env`` does not set.

        >>> s = Service("web", environment=(EnvSpec("A", "1"), EnvSpec("B", "2"), EnvSpec("C")))
        >>> s.env_defaults({"A": "x"})
        {'B': '2'}
        """
        return {
            spec.key: spec.default
            for spec in self.environment
            if spec.default is not None and spec.key not in env
        }


@dataclass(frozen=True)
class ReleaseCommand:
    """The top-level ``release:`` block: run once per promote, before any rollout step."""

    command: tuple[str, ...]
    service: str
    timeout: int = DEFAULT_RELEASE_TIMEOUT


@dataclass(frozen=True)
class Manifest:
    environment: tuple[EnvSpec, ...] = ()
    # In the order the manifest lists them.
    services: tuple[Service, ...] = ()
    release: ReleaseCommand | None = None

    @property
    def empty(self) -> bool:
        return not self.services

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    def service(self, name: str) -> Service | None:
        for service in self.services:
            if service.name == name:
                return service
        return None

    def missing_env(self, env: Mapping[str, str]) -> list[str]:
        """Keys the manifest requires (``environment: [KEY]``, no default) that ``env`` lacks.

        >>> m = Manifest(environment=(EnvSpec("A"), EnvSpec("B", "x")),
        ...              services=(Service("web", environment=(EnvSpec("C"),)),))
        >>> m.missing_env({"C": "1"})
        ['A']
        """
        required = {s.key for s in self.environment if s.default is None}
        for service in self.services:
            required |= {s.key for s in service.environment if s.default is None}
        return sorted(key for key in required if key not in env)
