"""What the ``kubernetes`` backend writes, as plain manifests (dicts); pure, no API calls.

Per app a namespace ``<prefix>-<app>``; per release an immutable Secret holding the env; per
service a Deployment whose pod template reads that Secret and is annotated with the release, so
each release gets its own ReplicaSet and a rollback to a release scales its old one back up.

>>> web = Service("web", "registry/myapp:web.1", scale=Scale(2, 2), command=("bin/web", "-v"),
...               port=Port(5443, HTTPS), health=Health("/health", 3, 4, 2))
>>> spec = AppSpec("myapp", "RBCDEFGHIJ", "BABCDEFGHI", {"FOO": "bar"}, (web,))
>>> dep = deployment_manifest(spec, spec.services[0], "relman-myapp")
>>> dep["spec"]["strategy"]["rollingUpdate"], dep["spec"]["progressDeadlineSeconds"]
({'maxSurge': '100%', 'maxUnavailable': '50%'}, 600)
>>> main = dep["spec"]["template"]["spec"]["containers"][0]
>>> main["args"], main["envFrom"]
(['bin/web', '-v'], [{'secretRef': {'name': 'env-rbcdefghij'}}])
>>> main["readinessProbe"]["httpGet"], main["readinessProbe"]["initialDelaySeconds"]
({'path': '/health', 'port': 5443, 'scheme': 'HTTPS'}, 3)
>>> dep["spec"]["template"]["metadata"]["annotations"]
{'relman.io/release': 'RBCDEFGHIJ'}
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from relman_common.errors import InvalidArgument
from relman_common.manifest import HTTPS, Health, Port, Scale, Service

from relman_deployer.backends.base import AppSpec, ReleaseJob, check_spec
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

# On a release command's Job and its pod (with the Job's name): what finds them for cleanup.
RELEASE_COMMAND_LABEL = "relman.io/release-command"

# A DNS-1123 label: valid as a Deployment name and as a label value.
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


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
    """Raise :class:`InvalidArgument` for a spec the cluster would reject (before any write).

    Names, keys and the manifest were checked by the Release service with the shared
    vocabulary; what is left is what only Kubernetes cares about.
    """
    check_spec(spec)
    for service in spec.services:
        if not service.image or any(c.isspace() for c in service.image):
            raise InvalidArgument(f"service {service.name}: invalid image {service.image!r}")
        try:
            RollingStrategy(service.max_surge_percent, service.max_unavailable_percent).validate()
        except InvalidArgument as err:
            raise InvalidArgument(f"service {service.name}: {err}") from None


def rolling_update(service: Service) -> Json:
    """``maxSurge``/``maxUnavailable`` as percent strings.

    Both at 0% is rejected by the API server, while the controller (and the sim) turn a
    rounding to 0/0 into ``maxUnavailable`` 1: that is what is written then.

    >>> rolling_update(Service("web", "i", minimum=100, maximum=100))
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


def readiness_probe(port: Port, health: Health) -> Json:
    """An HTTP(S) GET of the health path on the service's port (HTTPS when the container
    speaks TLS: ``port: https:5443``)."""
    get: Json = {"path": health.path, "port": port.number}
    if port.scheme == HTTPS:
        get["scheme"] = "HTTPS"
    return {
        "httpGet": get,
        "initialDelaySeconds": health.grace,
        "periodSeconds": health.interval,
        "timeoutSeconds": health.timeout,
    }


def container(spec: AppSpec, service: Service) -> Json:
    """The service's one container: image, argv, env (the release's Secret, plus manifest
    defaults for keys it lacks), ports, readiness, resources."""
    main: Json = {
        "name": CONTAINER,
        "image": service.image,
        "envFrom": [{"secretRef": {"name": secret_name(spec.release_id)}}],
    }
    if service.command:
        main["args"] = list(service.command)
    defaults = service.env_defaults(spec.env)
    if defaults:
        main["env"] = [{"name": k, "value": v} for k, v in sorted(defaults.items())]
    ports = (
        [{"name": CONTAINER, "containerPort": service.port.number, "protocol": "TCP"}]
        if (service.port is not None)
        else []
    )
    ports += [{"containerPort": p, "protocol": "TCP"} for p in service.ports]
    if ports:
        main["ports"] = ports
    if service.port is not None:
        main["readinessProbe"] = readiness_probe(service.port, service.health)
    resources = _resources(service.scale)
    if resources:
        main["resources"] = resources
    return main


def _resources(scale: Scale) -> Json:
    """Requests for cpu (millicores) and memory (MB), and memory as the limit, as Convox does."""
    requests: Json = {}
    limits: Json = {}
    if scale.cpu:
        requests["cpu"] = f"{scale.cpu}m"
    if scale.memory:
        requests["memory"] = limits["memory"] = f"{scale.memory}Mi"
    out: Json = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def deployment_manifest(spec: AppSpec, service: Service, namespace: str) -> Json:
    """The Deployment of one service, as server-side apply wants it (only fields we own).

    Its ``progressDeadlineSeconds`` is the spec's: the controller fails the rollout with
    ``ProgressDeadlineExceeded`` when no pod moved forward for longer.
    """
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
                "spec": {
                    "containers": [container(spec, service)],
                    "terminationGracePeriodSeconds": service.termination_grace,
                },
            },
        },
    }


def job_manifest(job: ReleaseJob, namespace: str) -> Json:
    """The ``batch/v1`` Job running a release command once: the service's container (image,
    the release's Secret and the manifest's env defaults, resources) with the command as its
    argv, no probes or ports, no retries (``backoffLimit`` 0, ``restartPolicy`` Never) and
    ``activeDeadlineSeconds`` = the command's timeout.

    >>> web = Service("web", "registry/myapp:web.1", command=("bin/web",), port=Port(5000))
    >>> spec = AppSpec("myapp", "RBCDEFGHIJ", "BABCDEFGHI", {"FOO": "bar"}, (web,))
    >>> job = ReleaseJob(spec, web, ("bin/migrate", "--all"), 60, "web-release-dbcdefghijk")
    >>> body = job_manifest(job, "relman-myapp")
    >>> body["spec"]["backoffLimit"], body["spec"]["activeDeadlineSeconds"]
    (0, 60)
    >>> pod = body["spec"]["template"]["spec"]
    >>> pod["restartPolicy"], pod["containers"][0]["args"], "readinessProbe" in pod["containers"][0]
    ('Never', ['bin/migrate', '--all'], False)
    >>> body["spec"]["template"]["metadata"]["labels"][RELEASE_COMMAND_LABEL]
    'web-release-dbcdefghijk'
    """
    main = container(job.spec, job.service)
    for key in ("ports", "readinessProbe"):
        main.pop(key, None)
    main["args"] = list(job.command)
    marks = {**labels(job.app), RELEASE_COMMAND_LABEL: job.name}
    annotations = {RELEASE_ANNOTATION: job.spec.release_id, BUILD_ANNOTATION: job.spec.build_id}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job.name,
            "namespace": namespace,
            "labels": marks,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": job.timeout_seconds,
            "template": {
                "metadata": {
                    "labels": marks,
                    "annotations": {RELEASE_ANNOTATION: job.spec.release_id},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [main],
                    "terminationGracePeriodSeconds": job.service.termination_grace,
                },
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
