"""What the ``kubernetes`` backend writes, as plain manifests (dicts); pure, no API calls.

Per app a namespace ``<prefix>-<app>``; per release an immutable Secret holding the env; per
service a Deployment whose pod template reads that Secret and is annotated with the release, so
each release gets its own ReplicaSet and a rollback to a release scales its old one back up.

>>> spec = AppSpec("myapp", "RBCDEFGHIJ", "BABCDEFGHI", {"FOO": "bar"},
...                (ServiceSpec("web", "registry/myapp:web.1", replicas=2, command="bin/web -v",
...                             port=5000, health=HealthCheck("/health", 3, 4, 2)),))
>>> dep = deployment_manifest(spec, spec.services[0], "relman-myapp")
>>> dep["spec"]["strategy"]["rollingUpdate"], dep["spec"]["progressDeadlineSeconds"]
({'maxSurge': '100%', 'maxUnavailable': '50%'}, 600)
>>> main = dep["spec"]["template"]["spec"]["containers"][0]
>>> main["args"], main["envFrom"]
(['bin/web', '-v'], [{'secretRef': {'name': 'env-rbcdefghij'}}])
>>> main["readinessProbe"]["httpGet"], main["readinessProbe"]["initialDelaySeconds"]
({'path': '/health', 'port': 5000}, 3)
>>> dep["spec"]["template"]["metadata"]["annotations"]
{'relman.io/release': 'RBCDEFGHIJ'}
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from relman_common.errors import InvalidArgument

from relman_deployer.backends.base import AppSpec, HealthCheck, ServiceSpec
from relman_deployer.rollout import RollingStrategy

Json = dict[str, Any]

FIELD_MANAGER = "relman"
CONTAINER = "main"
MANAGED_BY = "app.kubernetes.io/managed-by"
NAME_LABEL = "app.kubernetes.io/name"
APP_LABEL = "relman.io/app"
RELEASE_ANNOTATION = "relman.io/release"
BUILD_ANNOTATION = "relman.io/build"
# On the namespace: the services (JSON name -> replicas, in spec order) of the release in
# RELEASE_ANNOTATION, written last by apply(), so observers know the whole desired state even
# before the Deployments exist.
SERVICES_ANNOTATION = "relman.io/services"

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
# A DNS-1123 label: valid as a Deployment name and as a label value.
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SERVICE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_RELEASE_ID = re.compile(r"^[A-Za-z0-9]{1,200}$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def namespace_name(prefix: str, app: str) -> str:
    """``<prefix>-<app>``, the namespace of one app.

    >>> namespace_name("relman", "myapp")
    'relman-myapp'
    """
    return f"{prefix}-{app}"


def validate_prefix(prefix: str) -> None:
    """A prefix that makes a valid namespace name with any valid (30-character) app name."""
    if not _DNS_LABEL.match(prefix) or len(prefix) + 1 + 30 > 63:
        raise InvalidArgument(
            f"invalid namespace prefix {prefix!r}: lower-case letters, digits and '-', "
            "at most 32 characters"
        )


def secret_name(release_id: str) -> str:
    """The Secret holding one release's env.

    >>> secret_name("RBCDEFGHIJ")
    'env-rbcdefghij'
    """
    return f"env-{release_id.lower()}"


def validate_spec(spec: AppSpec) -> None:
    """Raise :class:`InvalidArgument` for a spec the cluster would reject (before any write)."""
    if not _APP_NAME.match(spec.app):
        raise InvalidArgument(f"invalid app name: {spec.app!r}")
    if spec.services and not _RELEASE_ID.match(spec.release_id):
        raise InvalidArgument(f"invalid release id: {spec.release_id!r}")
    if not 0 < spec.progress_deadline_seconds < 2**31 - 1:  # MaxInt32 means "no deadline"
        raise InvalidArgument(
            f"invalid progress deadline: {spec.progress_deadline_seconds}s (must be positive)"
        )
    for key in spec.env:
        if not _ENV_KEY.match(key):
            raise InvalidArgument(f"invalid environment key: {key!r}")
    seen: set[str] = set()
    for service in spec.services:
        if not _SERVICE_NAME.match(service.name):
            raise InvalidArgument(f"invalid service name: {service.name!r}")
        if service.name in seen:
            raise InvalidArgument(f"duplicate service: {service.name}")
        seen.add(service.name)
        if not service.image or any(c.isspace() for c in service.image):
            raise InvalidArgument(f"service {service.name}: invalid image {service.image!r}")
        if service.replicas < 0:
            raise InvalidArgument(f"service {service.name}: replicas must not be negative")
        if not 0 <= service.port <= 65535:
            raise InvalidArgument(f"service {service.name}: invalid port {service.port}")
        try:
            RollingStrategy(service.max_surge_percent, service.max_unavailable_percent).validate()
            command_args(service.command)
        except (InvalidArgument, ValueError) as err:
            raise InvalidArgument(f"service {service.name}: {err}") from None


def command_args(command: str) -> list[str]:
    """The container's ``args`` for a manifest ``command`` (split like a shell would).

    >>> command_args("bin/web --name 'a b'")
    ['bin/web', '--name', 'a b']
    """
    try:
        return shlex.split(command)
    except ValueError as err:
        raise InvalidArgument(f"invalid command {command!r}: {err}") from None


def rolling_update(service: ServiceSpec) -> Json:
    """``maxSurge``/``maxUnavailable`` as percent strings.

    Both at 0% is rejected by the API server, while the controller (and the sim) turn a
    rounding to 0/0 into ``maxUnavailable`` 1: that is what is written then.

    >>> rolling_update(ServiceSpec("web", "i", deployment_minimum=100, deployment_maximum=100))
    {'maxSurge': '0%', 'maxUnavailable': 1}
    """
    surge = service.max_surge_percent
    unavailable: str | int = f"{service.max_unavailable_percent}%"
    if surge == 0 and service.max_unavailable_percent == 0:
        unavailable = 1
    return {"maxSurge": f"{surge}%", "maxUnavailable": unavailable}


def labels(app: str, service: str | None = None) -> dict[str, str]:
    out = {MANAGED_BY: FIELD_MANAGER, APP_LABEL: app}
    if service is not None:
        out[NAME_LABEL] = service
    return out


def namespace_manifest(name: str, app: str, release: AppSpec | None = None) -> Json:
    """The app's namespace; with ``release``, annotated with its id and services."""
    meta: Json = {"name": name, "labels": labels(app)}
    if release is not None:
        services = {s.name: s.replicas for s in release.services}
        meta["annotations"] = {
            RELEASE_ANNOTATION: release.release_id,
            SERVICES_ANNOTATION: json.dumps(services, separators=(",", ":")),
        }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def secret_manifest(spec: AppSpec, namespace: str) -> Json:
    """The immutable Secret with ``spec.env`` (values as UTF-8, any text)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(spec.release_id),
            "namespace": namespace,
            "labels": labels(spec.app),
            "annotations": {RELEASE_ANNOTATION: spec.release_id},
        },
        "type": "Opaque",
        "immutable": True,
        "data": encode_env(spec.env),
    }


def encode_env(env: Mapping[str, str]) -> dict[str, str]:
    """A Secret's ``data``: base64 of each UTF-8 value.

    >>> encode_env({"A": "x=y\\nz"})
    {'A': 'eD15Cno='}
    """
    return {k: base64.b64encode(v.encode()).decode("ascii") for k, v in sorted(env.items())}


def decode_env(data: Mapping[str, str] | None) -> dict[str, str]:
    """The env held in a Secret's ``data``.

    >>> decode_env(encode_env({"A": "x=y\\nz", "B": ""}))
    {'A': 'x=y\\nz', 'B': ''}
    """
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def readiness_probe(port: int, health: HealthCheck | None) -> Json:
    check = health if health is not None else HealthCheck()
    return {
        "httpGet": {"path": check.path, "port": port},
        "initialDelaySeconds": check.grace,
        "periodSeconds": check.interval,
        "timeoutSeconds": check.timeout,
    }


def deployment_manifest(spec: AppSpec, service: ServiceSpec, namespace: str) -> Json:
    """The Deployment of one service, as server-side apply wants it (only fields we own).

    Its ``progressDeadlineSeconds`` is the spec's: the controller fails the rollout with
    ``ProgressDeadlineExceeded`` when no pod moved forward for longer.
    """
    container: Json = {
        "name": CONTAINER,
        "image": service.image,
        "envFrom": [{"secretRef": {"name": secret_name(spec.release_id)}}],
    }
    args = command_args(service.command)
    if args:
        container["args"] = args
    if service.port:
        container["ports"] = [{"name": CONTAINER, "containerPort": service.port, "protocol": "TCP"}]
        container["readinessProbe"] = readiness_probe(service.port, service.health)
    selector = {NAME_LABEL: service.name, APP_LABEL: spec.app}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": service.name,
            "namespace": namespace,
            "labels": labels(spec.app, service.name),
            "annotations": {
                RELEASE_ANNOTATION: spec.release_id,
                BUILD_ANNOTATION: spec.build_id,
            },
        },
        "spec": {
            "replicas": service.replicas,
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update(service)},
            "template": {
                "metadata": {
                    "labels": labels(spec.app, service.name),
                    "annotations": {RELEASE_ANNOTATION: spec.release_id},
                },
                "spec": {"containers": [container]},
            },
        },
    }


def referenced_secrets(pod_templates: list[Json]) -> set[str]:
    """Names of Secrets the given pod templates read through ``envFrom``.

    >>> container = {"envFrom": [{"secretRef": {"name": "env-r1"}}]}
    >>> referenced_secrets([{"spec": {"containers": [container]}}])
    {'env-r1'}
    """
    names: set[str] = set()
    for template in pod_templates:
        for container in (template.get("spec") or {}).get("containers") or []:
            for source in container.get("envFrom") or []:
                ref = source.get("secretRef") or {}
                if ref.get("name"):
                    names.add(str(ref["name"]))
    return names
