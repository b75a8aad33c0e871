"""From a release (its build's manifest, images and env) to the backend's :class:`AppSpec`.

>>> from datetime import datetime, timezone
>>> build = Build("BABCDEFGHIJ", "services:\\n  web:\\n    build: .\\n    port: 5000\\n",
...               {"web": "registry/app:web.BABCDEFGHIJ"})
>>> release = Release("RABCDEFGHIJ", "myapp", build.id, datetime.now(timezone.utc), {"A": "1"})
>>> spec = app_spec(release, build)
>>> [(s.name, s.image, s.replicas, s.port) for s in spec.services]
[('web', 'registry/app:web.BABCDEFGHIJ', 1, 5000)]
"""

from __future__ import annotations

from typing import Any

import yaml
from relman_common.errors import FailedPrecondition

from relman_deployer.backends.base import AppSpec, HealthCheck, ServiceSpec
from relman_deployer.domain.guards import EMPTY_MANIFEST
from relman_deployer.domain.model import Build, Release

DEFAULT_MINIMUM = 50
DEFAULT_MAXIMUM = 200


# libyaml's safe loader when PyYAML was built with it (it parses the same documents to the
# same values, several times faster than the pure-Python one).
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(FailedPrecondition):
    """The build's manifest cannot be deployed."""


def app_spec(release: Release, build: Build | None) -> AppSpec:
    """The desired state of ``release.app`` when ``release`` is live.

    Raises :class:`FailedPrecondition` with the empty-manifest message when there is nothing
    to deploy, and :class:`ManifestError` naming the service and field that is wrong.
    """
    if build is None:
        raise FailedPrecondition(EMPTY_MANIFEST)
    services = parse_services(build.manifest)
    if not services:
        raise FailedPrecondition(EMPTY_MANIFEST)
    specs = tuple(_service(name, body, build) for name, body in services.items())
    return AppSpec(
        app=release.app,
        release_id=release.id,
        build_id=build.id,
        env=dict(release.env),
        services=specs,
    )


def empty_spec(app: str) -> AppSpec:
    """An app with no services: what a rollback goes back to when nothing was ever active."""
    return AppSpec(app=app, release_id="", build_id="")


def parse_services(manifest: str) -> dict[str, dict[str, Any]]:
    """The ``services`` mapping of a manifest (empty when there is none)."""
    try:
        doc = yaml.load(manifest, Loader=_SafeLoader) if manifest.strip() else None
    except yaml.YAMLError as err:
        raise ManifestError(f"invalid manifest: {err}") from err
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ManifestError("invalid manifest: the top level must be a mapping")
    services = doc.get("services") or {}
    if not isinstance(services, dict):
        raise ManifestError("invalid manifest: services must be a mapping of name to service")
    result: dict[str, dict[str, Any]] = {}
    for name, body in services.items():
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ManifestError(f"invalid manifest: service {name} must be a mapping")
        result[str(name)] = body
    return result


def _service(name: str, body: dict[str, Any], build: Build) -> ServiceSpec:
    image = build.images.get(name) or body.get("image")
    if not image or not isinstance(image, str):
        raise ManifestError(f"service {name} has no image (neither in the build nor image:)")
    deployment = _mapping(name, "deployment", body.get("deployment"))
    minimum = _int(name, "deployment.minimum", deployment.get("minimum", DEFAULT_MINIMUM))
    maximum = _int(name, "deployment.maximum", deployment.get("maximum", DEFAULT_MAXIMUM))
    if not 0 <= minimum <= 100:
        raise ManifestError(f"service {name}: deployment.minimum must be 0-100, got {minimum}")
    if maximum < 100:
        raise ManifestError(f"service {name}: deployment.maximum must be >= 100, got {maximum}")
    port = _int(name, "port", body.get("port", 0))
    return ServiceSpec(
        name=name,
        image=image,
        replicas=_replicas(name, body.get("scale")),
        command=_command(name, body.get("command")),
        port=port,
        health=_health(name, body.get("health"), port),
        deployment_minimum=minimum,
        deployment_maximum=maximum,
    )


def _replicas(name: str, scale: Any) -> int:
    if scale is None:
        return 1
    if isinstance(scale, dict):
        count = _int(name, "scale.count", scale.get("count", 1))
    else:
        count = _int(name, "scale", scale)
    if count < 0:
        raise ManifestError(f"service {name}: scale.count must not be negative, got {count}")
    return count


def _command(name: str, command: Any) -> str:
    if command is None:
        return ""
    if isinstance(command, str):
        return command
    if isinstance(command, list) and all(isinstance(part, str) for part in command):
        return " ".join(command)
    raise ManifestError(f"service {name}: command must be a string")


def _health(name: str, health: Any, port: int) -> HealthCheck | None:
    if health is None:
        return HealthCheck() if port else None
    if isinstance(health, str):
        return HealthCheck(path=health)
    fields = _mapping(name, "health", health)
    unknown = sorted(set(fields) - {"path", "grace", "interval", "timeout"})
    if unknown:
        raise ManifestError(f"service {name}: unknown health field {unknown[0]}")
    default = HealthCheck()
    path = fields.get("path", default.path)
    if not isinstance(path, str):
        raise ManifestError(f"service {name}: health.path must be a string")
    return HealthCheck(
        path=path,
        grace=_int(name, "health.grace", fields.get("grace", default.grace)),
        interval=_int(name, "health.interval", fields.get("interval", default.interval)),
        timeout=_int(name, "health.timeout", fields.get("timeout", default.timeout)),
    )


def _mapping(name: str, field: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"service {name}: {field} must be a mapping")
    return value


def _int(name: str, field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ManifestError(f"service {name}: {field} must be a number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ManifestError(f"service {name}: {field} must be a number, got {value!r}")
