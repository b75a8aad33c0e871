"""The local control plane's node produces the failure states of a real one (the rules are in
cluster/relman_cluster/conditions.py): an image its registry does not hold, an image name that
does not parse, a command that exits, a memory limit exceeded, a missing Secret, a pod no node
can take (the real scheduler's FailedScheduling)."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s
from support.containers import Registry
from support.k8s_cluster import KubeCluster

pytestmark = pytest.mark.xdist_group("kube")

T = TypeVar("T")
WAIT = 60.0


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")
        time.sleep(0.1)


@pytest.fixture()
def core(kube_cluster: KubeCluster) -> Iterator[k8s.CoreV1Api]:
    api = kube_cluster.new_api_client()
    try:
        yield k8s.CoreV1Api(api)
    finally:
        api.close()


@pytest.fixture()
def ns(core: k8s.CoreV1Api) -> Iterator[str]:
    name = f"kf-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


def pod(core: k8s.CoreV1Api, ns: str, container: dict[str, Any]) -> str:
    name = f"p-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", **container}]},
    }
    core.create_namespaced_pod(ns, body)
    return name


def waiting_reason(core: k8s.CoreV1Api, ns: str, name: str, reason: str) -> Any:
    """The container status once it waits with ``reason``."""

    def check() -> Any:
        p = core.read_namespaced_pod(name, ns)
        for cs in p.status.container_statuses or []:
            if cs.state.waiting is not None and cs.state.waiting.reason == reason:
                return cs
        return None

    return wait_for(f"{name} waiting in {reason}", check)


def events(core: k8s.CoreV1Api, ns: str, name: str) -> list[tuple[str, str, str]]:
    found = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason, e.message) for e in found]


def ready(core: k8s.CoreV1Api, ns: str, name: str) -> bool:
    statuses = core.read_namespaced_pod(name, ns).status.container_statuses or []
    return bool(statuses) and all(cs.ready for cs in statuses)


def push_image(registry: Registry, repository: str, tag: str) -> str:
    """A (layerless) image in ``registry`` through its HTTP API; its reference."""

    def request(method: str, url: str, body: bytes, content_type: str) -> Any:
        req = urllib.request.Request(
            url, data=body, method=method, headers={"Content-Type": content_type}
        )
        return urllib.request.urlopen(req, timeout=10)

    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {},
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    with request("POST", f"{registry.url}/v2/{repository}/blobs/uploads/", b"", "") as resp:
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = registry.url + location
    sep = "&" if "?" in location else "?"
    request("PUT", f"{location}{sep}digest={digest}", config, "application/octet-stream").close()
    manifest_type = "application/vnd.docker.distribution.manifest.v2+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": digest,
        },
        "layers": [],
    }
    url = f"{registry.url}/v2/{repository}/manifests/{tag}"
    request("PUT", url, json.dumps(manifest).encode(), manifest_type).close()
    return f"{registry.addr}/{repository}:{tag}"


def test_an_image_the_registry_does_not_hold_backs_off_and_one_it_holds_runs(
    core: k8s.CoreV1Api, ns: str, registry: Registry
) -> None:
    held = push_image(registry, "relman-test/kubelet", "held")
    missing = f"{registry.addr}/relman-test/kubelet:missing"
    bad = pod(core, ns, {"image": missing})
    good = pod(core, ns, {"image": held})

    first = waiting_reason(core, ns, bad, "ErrImagePull")
    assert "not found" in first.state.waiting.message and not first.ready
    back_off = waiting_reason(core, ns, bad, "ImagePullBackOff")
    assert back_off.state.waiting.message == f'Back-off pulling image "{missing}"'
    assert core.read_namespaced_pod(bad, ns).status.phase == "Pending"
    back_off_event = ("Warning", "Failed", "Error: ImagePullBackOff")
    wait_for("ImagePullBackOff events", lambda: back_off_event in events(core, ns, bad))
    seen = events(core, ns, bad)
    assert ("Warning", "Failed", "Error: ErrImagePull") in seen
    assert ("Warning", "Failed", "Error: ImagePullBackOff") in seen
    assert ("Normal", "BackOff", f'Back-off pulling image "{missing}"') in seen
    assert any(m.startswith(f'Failed to pull image "{missing}": ') for _, r, m in seen)

    wait_for("the held image's pod ready", lambda: ready(core, ns, good))

    # Pushed meanwhile: the next pull after the back-off gets it, and the pod runs.
    push_image(registry, "relman-test/kubelet", "missing")

    wait_for("the pushed image's pod ready", lambda: ready(core, ns, bad))


def test_an_unpullable_tag_elsewhere_and_an_invalid_name(core: k8s.CoreV1Api, ns: str) -> None:
    unpullable = pod(core, ns, {"image": "registry.example/app:web.unpullable"})
    invalid = pod(core, ns, {"image": "registry.example/App:1"})
    waiting_reason(core, ns, unpullable, "ImagePullBackOff")
    cs = waiting_reason(core, ns, invalid, "InvalidImageName")
    assert "invalid reference format" in cs.state.waiting.message
    failed = ("Warning", "Failed", "Error: InvalidImageName")
    wait_for("a Failed event", lambda: failed in events(core, ns, invalid))


@pytest.mark.parametrize(
    ("container", "code", "reason"),
    [
        ({"image": "example/web:1", "args": ["sh", "-c", "echo starting; exit 3"]}, 3, "Error"),
        ({"image": "example/web:1", "command": ["true"]}, 0, "Completed"),
        (
            {
                "image": "example/web:1",
                "env": [{"name": "RELMAN_KUBELET_MEMORY_USAGE", "value": "128Mi"}],
                "resources": {"limits": {"memory": "64Mi"}},
            },
            137,
            "OOMKilled",
        ),
    ],
    ids=["exit-3", "exit-0", "oom"],
)
def test_a_process_that_ends_restarts_into_crash_loop_back_off(
    core: k8s.CoreV1Api, ns: str, container: dict[str, Any], code: int, reason: str
) -> None:
    name = pod(core, ns, container)
    cs = waiting_reason(core, ns, name, "CrashLoopBackOff")
    assert cs.restart_count >= 1 and not cs.ready
    last = cs.last_state.terminated
    assert (last.exit_code, last.reason) == (code, reason)
    back_off = ("Warning", "BackOff", "Back-off restarting failed container")
    wait_for("a BackOff event", lambda: back_off in events(core, ns, name))


def test_memory_under_the_limit_runs(core: k8s.CoreV1Api, ns: str) -> None:
    name = pod(
        core,
        ns,
        {
            "image": "example/web:1",
            "env": [{"name": "RELMAN_KUBELET_MEMORY_USAGE", "value": "32Mi"}],
            "resources": {"limits": {"memory": "64Mi"}},
        },
    )
    wait_for("ready", lambda: ready(core, ns, name))


def test_a_missing_secret_is_a_config_error_until_it_exists(core: k8s.CoreV1Api, ns: str) -> None:
    name = pod(core, ns, {"image": "example/web:1", "envFrom": [{"secretRef": {"name": "env"}}]})
    cs = waiting_reason(core, ns, name, "CreateContainerConfigError")
    assert cs.state.waiting.message == 'secret "env" not found'
    failed = ("Warning", "Failed", 'Error: secret "env" not found')
    wait_for("a Failed event", lambda: failed in events(core, ns, name))
    core.create_namespaced_secret(ns, {"metadata": {"name": "env"}, "stringData": {"A": "1"}})
    wait_for("ready", lambda: ready(core, ns, name))


def test_a_pod_no_node_can_take_is_unschedulable(core: k8s.CoreV1Api, ns: str) -> None:
    name = pod(core, ns, {"image": "example/web:1", "resources": {"requests": {"cpu": "1000"}}})

    def unschedulable() -> Any:
        for c in core.read_namespaced_pod(name, ns).status.conditions or []:
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                return c
        return None

    assert "Insufficient cpu" in wait_for("unschedulable", unschedulable).message


def test_container_logs_come_through_the_api_server(core: k8s.CoreV1Api, ns: str) -> None:
    """kube-apiserver's pods/log reaches the emulated node: a container's log is its
    RELMAN_KUBELET_LOG, written again by each run; a waiting container has none yet."""
    name = pod(
        core,
        ns,
        {
            "image": "example/web:1",
            "args": ["sh", "-c", "exit 2"],
            "env": [{"name": "RELMAN_KUBELET_LOG", "value": "starting\nerror: no database"}],
        },
    )
    waiting_reason(core, ns, name, "CrashLoopBackOff")
    assert core.read_namespaced_pod_log(name, ns) == "starting\nerror: no database\n"
    last = core.read_namespaced_pod_log(name, ns, previous=True, tail_lines=1)
    assert last == "error: no database\n"

    unpulled = pod(core, ns, {"image": "registry.example/app:web.unpullable"})
    waiting_reason(core, ns, unpulled, "ImagePullBackOff")
    with pytest.raises(k8s.ApiException) as refused:
        core.read_namespaced_pod_log(unpulled, ns)
    assert refused.value.status == 400 and "is waiting to start" in str(refused.value.body)
