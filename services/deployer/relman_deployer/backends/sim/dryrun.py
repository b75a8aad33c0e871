"""The sim's objects as a dry run shows them: what :meth:`SimBackend.apply` would make of an
AppSpec, rendered the way the kubernetes backend's objects read (a Deployment per service, the
release's env as a Secret the pod template refers to). Pure."""

from __future__ import annotations

from typing import Any

from relman_deployer.backends.base import AppSpec
from relman_deployer.backends.sim.model import pod_template
from relman_deployer.domain.plan import ObjectPlan, plan_objects

Json = dict[str, Any]
Rendered = tuple[str, str, Json]


def secret_name(release_id: str) -> str:
    return f"env-{release_id.lower()}"


def render(spec: AppSpec | None, namespace: str) -> list[Rendered]:
    """``(kind, name, object)`` of what the sim holds for ``spec`` (None: nothing)."""
    if spec is None or not spec.services:
        return []
    secret = secret_name(spec.release_id)
    meta = {"namespace": namespace, "annotations": {"relman.io/release": spec.release_id}}
    out: list[Rendered] = [
        (
            "Secret",
            secret,
            {
                "kind": "Secret",
                "metadata": {"name": secret, **meta},
                "stringData": dict(sorted(spec.env.items())),
            },
        )
    ]
    for service in spec.services:
        template: Json = dict(pod_template(spec, service))
        template["env"] = {"secretRef": secret}
        out.append(
            (
                "Deployment",
                service.name,
                {
                    "kind": "Deployment",
                    "metadata": {"name": service.name, **meta},
                    "spec": {
                        "replicas": service.replicas,
                        "progressDeadlineSeconds": spec.progress_deadline_seconds,
                        "strategy": {
                            "maxSurge": f"{service.max_surge_percent}%",
                            "maxUnavailable": f"{service.max_unavailable_percent}%",
                        },
                        "template": template,
                    },
                },
            )
        )
    return out


def plan(held: AppSpec | None, spec: AppSpec, namespace: str) -> tuple[ObjectPlan, ...]:
    """``spec`` against what the sim holds. The env of an earlier release stays with its
    ReplicaSets (a rollback scales them back up), so it is never shown as removed."""
    before = [
        obj
        for obj in render(held, namespace)
        if obj[0] != "Secret" or (held is not None and held.release_id == spec.release_id)
    ]
    return plan_objects(before, render(spec, namespace))
