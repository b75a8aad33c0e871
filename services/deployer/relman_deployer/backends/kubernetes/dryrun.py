"""A dry run of :func:`relman_deployer.backends.kubernetes.apply.apply_spec` (blocking calls:
run on an executor): what each object would look like after the apply, changing nothing.

The live objects are read as they are; the ones the apply would write are sent to the API
server with ``dryRun=All`` (server-side apply for the namespace and the Deployments, a create
for a new release's Secret), so admission, defaulting and the merge with what others own are
the server's own. Both sides leave out what the server manages (managedFields,
resourceVersion, uid, generation, creationTimestamp, status), so only what the apply changes
remains. Deployments of services no longer in the spec are shown as removed. When the app's
namespace does not exist yet nothing in it can be dry-run: its objects are shown as rendered.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from relman_common.errors import FailedPrecondition, Unavailable

from relman_deployer.backends.base import AppSpec
from relman_deployer.backends.kubernetes.apply import APPLY_PATCH
from relman_deployer.backends.kubernetes.errors import api_call, missing
from relman_deployer.backends.kubernetes.manifests import (
    APP_LABEL,
    FIELD_MANAGER,
    MANAGED_BY,
    decode_env,
    deployment_manifest,
    namespace_manifest,
    namespace_name,
    secret_manifest,
    secret_name,
)
from relman_deployer.domain.plan import ObjectPlan, plan_objects

Json = dict[str, Any]
Rendered = tuple[str, str, Json]

DRY_RUN = ("dryRun", "All")
SERVER_MANAGED = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
)


def without_server_fields(obj: Json) -> Json:
    """``obj`` without ``status`` and the metadata the server manages.

    >>> without_server_fields({"kind": "Secret", "status": {}, "metadata": {"name": "a",
    ...     "uid": "u", "resourceVersion": "7", "managedFields": []}})
    {'kind': 'Secret', 'metadata': {'name': 'a'}}
    """
    out = {k: v for k, v in obj.items() if k != "status"}
    if isinstance(obj.get("metadata"), dict):
        out["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in SERVER_MANAGED}
    return out


def plan_spec(api: k8s.ApiClient, namespace_prefix: str, spec: AppSpec) -> tuple[ObjectPlan, ...]:
    """The objects ``apply_spec(api, namespace_prefix, spec)`` would write, now and after."""
    ns = namespace_name(namespace_prefix, spec.app)
    ns_path = f"/api/v1/namespaces/{ns}"
    live_ns = _get(api, ns_path, f"reading namespace {ns}")
    if live_ns is None:
        return plan_objects([], _unplaced(api, ns, spec))
    if (live_ns.get("metadata") or {}).get("deletionTimestamp"):
        raise Unavailable(f"namespace {ns} is being deleted; try again when it is gone")
    before: list[Rendered] = [("Namespace", ns, without_server_fields(live_ns))]
    with api_call(f"dry-run applying namespace {ns}"):
        applied = _send(api, ns_path, "PATCH", namespace_manifest(ns, spec.app, spec))
    after: list[Rendered] = [("Namespace", ns, without_server_fields(applied))]
    if spec.services:
        name = secret_name(spec.release_id)
        live = _get(api, f"{ns_path}/secrets/{name}", f"reading Secret {ns}/{name}")
        if live is not None:
            if decode_env(live.get("data")) != dict(spec.env):
                raise FailedPrecondition(
                    f"Secret {ns}/{name} exists with another environment than release "
                    f"{spec.release_id}; releases are immutable"
                )
            before.append(("Secret", name, without_server_fields(live)))
            after.append(("Secret", name, without_server_fields(live)))
        else:
            with api_call(f"dry-run creating Secret {ns}/{name}"):
                made = _send(api, f"{ns_path}/secrets", "POST", secret_manifest(spec, ns))
            after.append(("Secret", name, without_server_fields(made)))
    for service in spec.services:
        path = f"/apis/apps/v1/namespaces/{ns}/deployments/{service.name}"
        live = _get(api, path, f"reading Deployment {ns}/{service.name}")
        if live is not None:
            before.append(("Deployment", service.name, without_server_fields(live)))
        with api_call(f"dry-run applying Deployment {ns}/{service.name}"):
            applied = _send(api, path, "PATCH", deployment_manifest(spec, service, ns))
        after.append(("Deployment", service.name, without_server_fields(applied)))
    wanted = {s.name for s in spec.services}
    selector = f"{MANAGED_BY}={FIELD_MANAGER},{APP_LABEL}={spec.app}"
    with api_call(f"listing Deployments in {ns}"):
        listed = k8s.AppsV1Api(api).list_namespaced_deployment(
            ns, label_selector=selector, _preload_content=False
        )
    for dep in _read_json(listed).get("items") or []:
        meta = dep.get("metadata") or {}
        if meta.get("name") not in wanted and not meta.get("deletionTimestamp"):
            before.append(("Deployment", str(meta.get("name")), without_server_fields(dep)))
    return plan_objects(before, after)


def _unplaced(api: k8s.ApiClient, ns: str, spec: AppSpec) -> list[Rendered]:
    """A first apply: the namespace dry-run created, what goes in it as rendered."""
    with api_call(f"dry-run creating namespace {ns}"):
        made = _send(api, "/api/v1/namespaces", "POST", namespace_manifest(ns, spec.app, spec))
    out: list[Rendered] = [("Namespace", ns, without_server_fields(made))]
    if spec.services:
        out.append(("Secret", secret_name(spec.release_id), secret_manifest(spec, ns)))
    out += [("Deployment", s.name, deployment_manifest(spec, s, ns)) for s in spec.services]
    return out


def _get(api: k8s.ApiClient, path: str, what: str) -> Json | None:
    """The object at ``path`` as the API's JSON, None when there is none."""
    with api_call(what):
        try:
            return _send(api, path, "GET", None)
        except ApiException as exc:
            if missing(exc):
                return None
            raise


def _send(api: k8s.ApiClient, path: str, method: str, body: Json | None) -> Json:
    """One request; a PATCH is a server-side apply (field manager ``relman``, forced) and a
    PATCH or POST is a dry run: the server answers with the object it would store."""
    query: list[tuple[str, str]] = []
    headers = {"Accept": "application/json"}
    if method == "PATCH":
        query = [DRY_RUN, ("fieldManager", FIELD_MANAGER), ("force", "true")]
        headers["Content-Type"] = APPLY_PATCH
    elif method == "POST":
        query = [DRY_RUN, ("fieldManager", FIELD_MANAGER)]
        headers["Content-Type"] = "application/json"
    response = api.call_api(
        path,
        method,
        query_params=query,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
    )
    return _read_json(response)


def _read_json(response: Any) -> Json:
    try:
        data = json.loads(response.data)
    finally:
        response.release_conn()
    return data if isinstance(data, dict) else {}
