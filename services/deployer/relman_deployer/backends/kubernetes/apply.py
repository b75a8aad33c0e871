"""Writing one app's desired state to the API server (blocking calls: run on an executor).

:func:`apply_spec` writes, in this order: the namespace (if missing), the release's Secret,
each Deployment, the deletion of Deployments of services no longer in the spec, and last the
namespace's annotations naming the release and its services. Observers read that annotation as
"the current release", so a snapshot never claims a release is complete while some of its
Deployments still have to be written. Everything is written with server-side apply (field
manager ``relman``), which leaves alone the fields others own.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from relman_common.errors import FailedPrecondition, Unavailable

from relman_deployer.backends.base import AppSpec
from relman_deployer.backends.kubernetes.errors import api_call, missing
from relman_deployer.backends.kubernetes.manifests import (
    APP_LABEL,
    FIELD_MANAGER,
    MANAGED_BY,
    decode_env,
    deployment_manifest,
    labels,
    namespace_manifest,
    namespace_name,
    referenced_secrets,
    secret_manifest,
    secret_name,
)

log = logging.getLogger("relman.deployer.kubernetes")

Json = dict[str, Any]

APPLY_PATCH = "application/apply-patch+yaml"


def apply_spec(api: k8s.ApiClient, namespace_prefix: str, spec: AppSpec) -> None:
    """Make ``spec`` the desired state of its app's namespace."""
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    ns = namespace_name(namespace_prefix, spec.app)
    _ensure_namespace(core, ns, spec.app)
    if spec.services:
        _ensure_secret(core, ns, spec)
    for service in spec.services:
        body = deployment_manifest(spec, service, ns)
        with api_call(f"applying Deployment {ns}/{service.name}"):
            server_side_apply(
                api, f"/apis/apps/v1/namespaces/{ns}/deployments/{service.name}", body
            )
    _delete_other_deployments(apps, ns, spec)
    with api_call(f"annotating namespace {ns}"):
        server_side_apply(api, f"/api/v1/namespaces/{ns}", namespace_manifest(ns, spec.app, spec))
    _prune_secrets(core, apps, ns, spec)
    log.info("applied release %s of %s to namespace %s", spec.release_id, spec.app, ns)


def ensure_release_env(api: k8s.ApiClient, namespace_prefix: str, spec: AppSpec) -> str:
    """The app's namespace and the release's Secret, as :func:`apply_spec` writes them,
    without touching its Deployments (what a release command needs); the namespace."""
    core = k8s.CoreV1Api(api)
    ns = namespace_name(namespace_prefix, spec.app)
    _ensure_namespace(core, ns, spec.app)
    _ensure_secret(core, ns, spec)
    return ns


def _ensure_namespace(core: k8s.CoreV1Api, ns: str, app: str) -> None:
    with api_call(f"creating namespace {ns}"):
        try:
            existing = core.read_namespace(ns)
        except ApiException as exc:
            if not missing(exc):
                raise
            try:
                core.create_namespace(namespace_manifest(ns, app))
            except ApiException as create_exc:
                if create_exc.status != 409:
                    raise
            return
    if existing.metadata.deletion_timestamp is not None:
        raise Unavailable(f"namespace {ns} is being deleted; try again when it is gone")


def _ensure_secret(core: k8s.CoreV1Api, ns: str, spec: AppSpec) -> None:
    """Create the release's immutable Secret, or check the one there holds the same env."""
    name = secret_name(spec.release_id)
    with api_call(f"creating Secret {ns}/{name}"):
        try:
            core.create_namespaced_secret(ns, secret_manifest(spec, ns))
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = core.read_namespaced_secret(name, ns)
    if decode_env(existing.data) != dict(spec.env):
        raise FailedPrecondition(
            f"Secret {ns}/{name} exists with another environment than release "
            f"{spec.release_id}; releases are immutable"
        )


def _delete_other_deployments(apps: k8s.AppsV1Api, ns: str, spec: AppSpec) -> None:
    wanted = {s.name for s in spec.services}
    selector = f"{MANAGED_BY}={FIELD_MANAGER},{APP_LABEL}={spec.app}"
    with api_call(f"listing Deployments in {ns}"):
        existing = apps.list_namespaced_deployment(ns, label_selector=selector).items
    for dep in existing:
        name = dep.metadata.name
        if name in wanted or dep.metadata.deletion_timestamp is not None:
            continue
        with api_call(f"deleting Deployment {ns}/{name}"):
            try:
                apps.delete_namespaced_deployment(name, ns, propagation_policy="Background")
            except ApiException as exc:
                if not missing(exc):
                    raise
        log.info("deleted Deployment %s/%s (not in release %s)", ns, name, spec.release_id)


def _prune_secrets(core: k8s.CoreV1Api, apps: k8s.AppsV1Api, ns: str, spec: AppSpec) -> None:
    """Delete env Secrets no Deployment or ReplicaSet refers to any more.

    ReplicaSets kept for rollback (revisionHistoryLimit) keep their Secret; a rollback to
    a release whose ReplicaSet is gone writes its Secret again.
    """
    selector = ",".join(f"{k}={v}" for k, v in labels(spec.app).items())
    with api_call(f"listing Secrets in {ns}"):
        secrets = core.list_namespaced_secret(ns, label_selector=selector).items
        owners = _items(apps.list_namespaced_deployment(ns, _preload_content=False))
        owners += _items(apps.list_namespaced_replica_set(ns, _preload_content=False))
    keep = referenced_secrets([(o.get("spec") or {}).get("template") or {} for o in owners])
    if spec.services:
        keep.add(secret_name(spec.release_id))
    for secret in secrets:
        name = secret.metadata.name
        if name in keep:
            continue
        with api_call(f"deleting Secret {ns}/{name}"):
            try:
                core.delete_namespaced_secret(name, ns)
            except ApiException as exc:
                if not missing(exc):
                    raise


def server_side_apply(api: k8s.ApiClient, path: str, body: Json) -> None:
    """``PATCH`` ``body`` to ``path`` as server-side apply (field manager ``relman``, forced).

    The generated client's patch methods always send a JSON/strategic-merge patch content
    type, so the request is made through ``call_api`` with the apply content type (JSON is
    YAML, so the body is sent as JSON).
    """
    response = api.call_api(
        path,
        "PATCH",
        query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        header_params={"Content-Type": APPLY_PATCH, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
    )
    _ = response.data  # read it all, so the connection can be reused
    response.release_conn()


def _items(response: Any) -> list[Json]:
    """The items of a list response read with ``_preload_content=False`` (plain API JSON)."""
    try:
        data = json.loads(response.data)
    finally:
        response.release_conn()
    return [item for item in data.get("items") or [] if isinstance(item, dict)]
