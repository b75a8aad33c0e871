"""The ``kubernetes`` backend against a real control plane (kube-apiserver, the real Deployment,
ReplicaSet and garbage-collector controllers, the real scheduler, emulated kubelets).

Every wait has a deadline that only turns a hang into a failure; nothing is timed.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from relman_common.errors import InvalidArgument, Unauthenticated, Unavailable
from relman_common.manifest import Health, Port, Scale, Service
from relman_deployer.backends import get_backend
from relman_deployer.backends.base import (
    AppSpec,
    BackendEvent,
    Observation,
    RolloutStatus,
)
from relman_deployer.backends.kubernetes import KubernetesBackend, KubernetesObserver
from relman_deployer.backends.kubernetes.manifests import decode_env
from support.helpers import free_port
from support.k8s_cluster import KubeCluster

pytestmark = pytest.mark.xdist_group("kube")

DEADLINE = 90.0  # seconds; generous, only to turn a hang into a failure
A = "[bcdfghjklmnpqrstvwxz2456789]"


def image(app: str, service: str, tag: str) -> str:
    return f"registry.host/convox/{app}:{service}.{tag}"


def app_spec(
    app: str,
    release: str,
    *,
    tag: str = "BABCDEFGHI",
    env: dict[str, str] | None = None,
    services: tuple[tuple[str, int], ...] = (("web", 3), ("worker", 2)),
    deadline: int = 600,
) -> AppSpec:
    return AppSpec(
        app=app,
        release_id=release,
        build_id="B" + release[1:],
        env=env if env is not None else {"FOO": "bar"},
        services=tuple(
            Service(
                name=name,
                image=image(app, name, tag),
                scale=Scale(replicas, replicas),
                command=("bin/web", "--port", "5000") if name == "web" else (),
                port=Port(5000) if name == "web" else None,
                health=Health("/health", grace=2, interval=3, timeout=1),
            )
            for name, replicas in services
        ),
        progress_deadline_seconds=deadline,
    )


class Follower:
    """Reads one observer, keeping everything it yielded."""

    def __init__(self, observer: KubernetesObserver) -> None:
        self.observer = observer
        self.seen: list[Observation] = []

    async def until(
        self, done: Callable[[list[Observation]], bool], what: str, within: float = DEADLINE
    ) -> list[Observation]:
        """Read until ``done(everything seen)``; returns what this call read."""
        start = len(self.seen)

        async def run() -> list[Observation]:
            if self.seen and done(self.seen):
                return self.seen[start:]
            async for item in self.observer:
                self.seen.append(item)
                if done(self.seen):
                    return self.seen[start:]
            raise AssertionError(f"observer ended while waiting for {what}")

        try:
            return await asyncio.wait_for(run(), within)
        except TimeoutError:
            last = [s for s in self.seen if isinstance(s, RolloutStatus)][-1:]
            reasons = Counter(e.reason for e in events(self.seen))
            raise AssertionError(
                f"no {what} within {within}s; last status {last}; events {dict(reasons)}"
            ) from None

    async def complete(self, release: str) -> list[Observation]:
        return await self.until(completed(release), f"complete rollout of {release}")


def completed(release: str) -> Callable[[list[Observation]], bool]:
    def done(seen: list[Observation]) -> bool:
        last = seen[-1]
        return isinstance(last, RolloutStatus) and last.release_id == release and last.complete

    return done


def has_completed(seen: list[Observation], release: str) -> bool:
    return any(
        isinstance(o, RolloutStatus) and o.release_id == release and o.complete for o in seen
    )


def events(seen: list[Observation], reason: str | None = None) -> list[BackendEvent]:
    return [o for o in seen if isinstance(o, BackendEvent) and reason in (None, o.reason)]


def statuses(seen: list[Observation], release: str | None = None) -> list[RolloutStatus]:
    return [o for o in seen if isinstance(o, RolloutStatus) and release in (None, o.release_id)]


@pytest.fixture
async def follow(backend: KubernetesBackend) -> AsyncIterator[Callable[[str], Follower]]:
    opened: list[KubernetesObserver] = []

    def open_(app: str) -> Follower:
        observer = backend.observe(app)
        opened.append(observer)
        return Follower(observer)

    yield open_
    for observer in opened:
        await observer.aclose()


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking client call, off the event loop (the observers keep running meanwhile)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def replica_sets(api: Any, ns: str, service: str) -> dict[str, tuple[str, int]]:
    """``{release annotation of the pod template: (ReplicaSet name, spec.replicas)}``."""
    listing = await call(
        k8s.AppsV1Api(api).list_namespaced_replica_set,
        ns,
        label_selector=f"app.kubernetes.io/name={service}",
    )
    return {
        rs.spec.template.metadata.annotations["relman.io/release"]: (
            rs.metadata.name,
            rs.spec.replicas,
        )
        for rs in listing.items
    }


async def test_two_service_app_rolls_out_with_kubernetes_events_until_complete(
    backend: KubernetesBackend, follow: Callable[[str], Follower], app_name: str
) -> None:
    ns = f"relman-{app_name}"
    follower = follow(app_name)
    first = await follower.until(lambda s: len(s) >= 1, "a first snapshot")
    assert first == [RolloutStatus(release_id="", services=())]  # nothing deployed yet

    spec = app_spec(app_name, "RBCDEFGHIJK")
    await backend.apply(spec)
    seen = await follower.complete("RBCDEFGHIJK")

    final = statuses(seen, "RBCDEFGHIJK")[-1]
    assert [(s.name, s.desired, s.updated, s.total, s.available) for s in final.services] == [
        ("web", 3, 3, 3, 3),
        ("worker", 2, 2, 2, 2),
    ]
    reasons = {e.reason for e in events(seen)}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled", "Pulling"} <= reasons
    # Started may come after the pods are ready in the stream; it comes within the deadline.
    await follower.until(
        lambda s: len(events(s, "Started")) >= 5, "a Started event for each of the 5 pods"
    )
    seen = follower.seen

    for service, replicas in (("web", 3), ("worker", 2)):
        rs = rf"{service}-{A}{{1,10}}"
        pod = rf"{rs}-{A}{{5}}"
        scaled = [e for e in events(seen, "ScalingReplicaSet") if e.source.endswith(service)]
        assert len(scaled) == 1
        assert scaled[0].source == f"system/k8s/{service}"
        assert re.fullmatch(rf"Scaled up replica set {rs} to {replicas}", scaled[0].message)
        created = [e for e in events(seen, "SuccessfulCreate") if f"/{service}-" in e.source]
        assert len(created) == replicas
        for event in created:
            assert re.fullmatch(rf"system/k8s/{rs}", event.source), event
            assert re.fullmatch(rf"Created pod: {pod}", event.message), event
        for reason, message in (
            ("Scheduled", rf"Successfully assigned {ns}/{pod} to relman-node-\d+"),
            ("Pulling", re.escape(f'Pulling image "{image(app_name, service, "BABCDEFGHI")}"')),
            ("Started", "Started container main"),
        ):
            mine = [e for e in events(seen, reason) if f"/{service}-" in e.source]
            assert len(mine) == replicas, (reason, mine)
            for event in mine:
                assert re.fullmatch(rf"system/k8s/{pod}", event.source), event
                assert re.fullmatch(message, event.message), event
    assert all(e.time.tzinfo is not None for e in events(seen))


async def test_deployments_are_written_as_the_release_says(
    backend: KubernetesBackend, kube_api: Any, app_name: str
) -> None:
    ns = f"relman-{app_name}"
    spec = app_spec(app_name, "RBCDEFGHIJK", env={"FOO": "bar", "MULTI": "a=b\nc ü"})
    await backend.apply(spec)

    namespace = await call(k8s.CoreV1Api(kube_api).read_namespace, ns)
    assert namespace.metadata.labels["app.kubernetes.io/managed-by"] == "relman"
    web = await call(k8s.AppsV1Api(kube_api).read_namespaced_deployment, "web", ns)
    assert web.metadata.annotations["relman.io/release"] == "RBCDEFGHIJK"
    assert web.spec.replicas == 3
    assert web.spec.progress_deadline_seconds == 600
    assert web.spec.strategy.rolling_update.max_surge == "100%"
    assert web.spec.strategy.rolling_update.max_unavailable == "50%"
    template = web.spec.template
    assert template.metadata.annotations["relman.io/release"] == "RBCDEFGHIJK"
    assert template.metadata.labels["app.kubernetes.io/name"] == "web"
    assert template.metadata.labels["relman.io/app"] == app_name
    (main,) = template.spec.containers
    assert main.name == "main"
    assert main.image == image(app_name, "web", "BABCDEFGHI")
    assert main.args == ["bin/web", "--port", "5000"]
    assert main.ports[0].container_port == 5000
    probe = main.readiness_probe
    assert (probe.http_get.path, probe.http_get.port) == ("/health", 5000)
    assert (probe.initial_delay_seconds, probe.period_seconds, probe.timeout_seconds) == (2, 3, 1)
    assert main.env_from[0].secret_ref.name == "env-rbcdefghijk"
    worker = await call(k8s.AppsV1Api(kube_api).read_namespaced_deployment, "worker", ns)
    (worker_main,) = worker.spec.template.spec.containers
    assert worker_main.readiness_probe is None and worker_main.args is None

    secret = await call(k8s.CoreV1Api(kube_api).read_namespaced_secret, "env-rbcdefghijk", ns)
    assert secret.immutable is True
    assert decode_env(secret.data) == {"FOO": "bar", "MULTI": "a=b\nc ü"}


async def test_new_release_rolls_pods_over_and_scales_the_old_replica_set_to_zero(
    backend: KubernetesBackend,
    follow: Callable[[str], Follower],
    kube_api: Any,
    app_name: str,
) -> None:
    ns = f"relman-{app_name}"
    follower = follow(app_name)
    await backend.apply(app_spec(app_name, "RBCDEFGHIJK"))
    await follower.complete("RBCDEFGHIJK")
    before = await replica_sets(kube_api, ns, "web")

    await backend.apply(app_spec(app_name, "RCDEFGHIJKL", tag="BBCDEFGHIJ"))
    seen = await follower.complete("RCDEFGHIJKL")

    after = await replica_sets(kube_api, ns, "web")
    old_name, old_replicas = after["RBCDEFGHIJK"]
    new_name, new_replicas = after["RCDEFGHIJKL"]
    assert old_name == before["RBCDEFGHIJK"][0] and old_name != new_name
    assert (old_replicas, new_replicas) == (0, 3)
    scales = [e.message for e in events(seen, "ScalingReplicaSet") if e.source.endswith("/web")]
    assert scales[0] == f"Scaled up replica set {new_name} to 3"  # surge 100%: all at once
    assert f"Scaled down replica set {old_name} to 0" in scales
    # In between, the old pods kept serving: never fewer than desired - 50% available.
    for status in statuses(seen, "RCDEFGHIJKL"):
        web = status.services[0]
        assert web.available >= 2 and web.total <= 6
    pods = await call(
        k8s.CoreV1Api(kube_api).list_namespaced_pod, ns, label_selector="app.kubernetes.io/name=web"
    )
    images = {p.spec.containers[0].image for p in pods.items if not p.metadata.deletion_timestamp}
    assert images == {image(app_name, "web", "BBCDEFGHIJ")}


async def test_crash_looping_release_never_completes_and_reports_restarts_and_deadline(
    backend: KubernetesBackend, follow: Callable[[str], Follower], app_name: str
) -> None:
    follower = follow(app_name)
    await backend.apply(app_spec(app_name, "RBCDEFGHIJK", services=(("web", 2),)))
    await follower.complete("RBCDEFGHIJK")

    # A short progress deadline, to see the controller give up.
    crashing = app_spec(app_name, "RCDEFGHIJKL", tag="crash", services=(("web", 2),))
    await backend.apply(replace(crashing, progress_deadline_seconds=3))

    def timed_out(status: RolloutStatus) -> bool:
        progressing = status.services[0].progressing
        return progressing is not None and progressing.reason == "ProgressDeadlineExceeded"

    def failed_after_restarts(seen: list[Observation]) -> bool:
        last = seen[-1]
        return (
            isinstance(last, RolloutStatus)
            and last.release_id == "RCDEFGHIJKL"
            and timed_out(last)
            and last.services[0].restarts >= 2
            and len(events(seen, "BackOff")) >= 2
        )

    seen = await follower.until(failed_after_restarts, "a failed rollout with restarts")
    crash = statuses(seen, "RCDEFGHIJKL")
    assert not any(s.complete for s in crash)
    restarts = [s.services[0].restarts for s in crash]
    assert restarts == sorted(restarts) and restarts[-1] >= 2
    progressing = crash[-1].services[0].progressing
    assert progressing is not None and progressing.status == "False"
    assert re.fullmatch(r'ReplicaSet "web-\w+" has timed out progressing\.', progressing.message)
    backoff = events(seen, "BackOff")
    assert all(e.message == "Back-off restarting failed container" for e in backoff)
    assert all(re.fullmatch(rf"system/k8s/web-{A}+-{A}{{5}}", e.source) for e in backoff)
    # maxUnavailable 50% of 2: one old pod keeps serving all along.
    assert all(s.services[0].available >= 1 for s in crash)
    available = crash[-1].services[0].availability
    assert available is not None and available.reason == "MinimumReplicasAvailable"


async def test_rollback_scales_the_old_replica_set_back_and_restores_its_env(
    backend: KubernetesBackend,
    follow: Callable[[str], Follower],
    kube_api: Any,
    app_name: str,
) -> None:
    ns = f"relman-{app_name}"
    follower = follow(app_name)
    first = app_spec(app_name, "RBCDEFGHIJK", env={"FOO": "one", "ONLY_IN_FIRST": "x"})
    await backend.apply(first)
    await follower.complete("RBCDEFGHIJK")
    await backend.apply(app_spec(app_name, "RCDEFGHIJKL", tag="crash", env={"FOO": "two"}))
    await follower.until(
        lambda s: len(events(s, "BackOff")) >= 1, "a BackOff of the broken release"
    )
    first_rs = (await replica_sets(kube_api, ns, "web"))["RBCDEFGHIJK"][0]

    await backend.apply(first)  # the rollback: the first release's spec again
    seen = await follower.complete("RBCDEFGHIJK")

    sets = await replica_sets(kube_api, ns, "web")
    assert sets["RBCDEFGHIJK"] == (first_rs, 3)  # the same ReplicaSet, back at full size
    assert sets["RCDEFGHIJKL"][1] == 0
    assert f"Scaled down replica set {sets['RCDEFGHIJKL'][0]} to 0" in [
        e.message for e in events(seen, "ScalingReplicaSet")
    ]
    web = await call(k8s.AppsV1Api(kube_api).read_namespaced_deployment, "web", ns)
    secret_name = web.spec.template.spec.containers[0].env_from[0].secret_ref.name
    assert secret_name == "env-rbcdefghijk"
    secret = await call(k8s.CoreV1Api(kube_api).read_namespaced_secret, secret_name, ns)
    assert decode_env(secret.data) == {"FOO": "one", "ONLY_IN_FIRST": "x"}


async def test_services_left_out_of_a_release_are_deleted(
    backend: KubernetesBackend,
    follow: Callable[[str], Follower],
    kube_api: Any,
    app_name: str,
) -> None:
    ns = f"relman-{app_name}"
    apps_api = k8s.AppsV1Api(kube_api)
    follower = follow(app_name)
    await backend.apply(app_spec(app_name, "RBCDEFGHIJK"))
    await follower.complete("RBCDEFGHIJK")
    worker_pods = {
        e.message.removeprefix("Created pod: ")
        for e in events(follower.seen, "SuccessfulCreate")
        if "/worker-" in e.source
    }

    await backend.apply(app_spec(app_name, "RCDEFGHIJKL", services=(("web", 3),)))
    seen = await follower.until(
        lambda s: {e.source.removeprefix("system/k8s/") for e in events(s, "Killing")}
        >= worker_pods,
        "Killing events for the worker's pods",
    )
    listing = await call(apps_api.list_namespaced_deployment, ns)
    assert [d.metadata.name for d in listing.items if not d.metadata.deletion_timestamp] == ["web"]
    snapshot = statuses(seen, "RCDEFGHIJKL")[-1]
    assert [s.name for s in snapshot.services] == ["web"]

    # An AppSpec with no services (rollback of a first release) removes every Deployment.
    await backend.apply(AppSpec(app=app_name, release_id="", build_id=""))
    await follower.until(completed(""), "an empty, complete snapshot")
    listing = await call(apps_api.list_namespaced_deployment, ns)
    assert [d.metadata.name for d in listing.items if not d.metadata.deletion_timestamp] == []


async def test_every_observer_gets_every_event_and_closing_one_stops_its_threads(
    backend: KubernetesBackend, app_name: str
) -> None:
    one, two = Follower(backend.observe(app_name)), Follower(backend.observe(app_name))
    spec = app_spec(app_name, "RBCDEFGHIJK", services=(("web", 3),))
    await backend.apply(spec)

    def all_started(seen: list[Observation]) -> bool:
        return len(events(seen, "Started")) >= 3 and has_completed(seen, "RBCDEFGHIJK")

    await asyncio.gather(one.until(all_started, "rollout"), two.until(all_started, "rollout"))
    for reason in ("ScalingReplicaSet", "SuccessfulCreate", "Scheduled", "Pulling", "Started"):
        assert sorted((e.source, e.message) for e in events(one.seen, reason)) == sorted(
            (e.source, e.message) for e in events(two.seen, reason)
        ), reason

    await one.observer.aclose()
    assert await asyncio.to_thread(one.observer.join, 10.0)
    assert one.observer.threads_alive() == 0
    assert [item async for item in one.observer] == []

    # The other one still follows: scaling up is reported to it.
    await backend.apply(app_spec(app_name, "RBCDEFGHIJK", services=(("web", 4),)))
    seen = await two.until(
        lambda s: statuses(s, "RBCDEFGHIJK")[-1].services[0].desired == 4
        and statuses(s, "RBCDEFGHIJK")[-1].complete,
        "the scale-up",
    )
    assert any(e.message.endswith(" to 4") for e in events(seen, "ScalingReplicaSet"))

    await backend.close()

    async def drain() -> None:
        async for _ in two.observer:
            pass

    await asyncio.wait_for(drain(), DEADLINE)  # the backend's close ends the iteration
    assert await asyncio.to_thread(two.observer.join, 10.0)


async def test_an_observer_reports_only_what_happens_after_it_started(
    backend: KubernetesBackend, follow: Callable[[str], Follower], app_name: str
) -> None:
    earlier = follow(app_name)
    await backend.apply(app_spec(app_name, "RBCDEFGHIJK", services=(("web", 2),)))
    await earlier.until(
        lambda s: len(events(s, "Started")) >= 2 and has_completed(s, "RBCDEFGHIJK"),
        "the first rollout",
    )
    old_pods = {
        e.message.removeprefix("Created pod: ")
        for e in events(earlier.seen)
        if e.reason == "SuccessfulCreate"
    }

    later = follow(app_name)
    first = await later.until(lambda s: len(s) >= 1, "a first snapshot")
    assert first[0] == statuses(earlier.seen, "RBCDEFGHIJK")[-1]  # where things stand now

    await backend.apply(app_spec(app_name, "RBCDEFGHIJK", services=(("web", 3),)))
    seen = await later.until(
        lambda s: len(events(s, "Started")) >= 1
        and has_completed(s[1:], "RBCDEFGHIJK")
        and statuses(s, "RBCDEFGHIJK")[-1].services[0].desired == 3,
        "the scale-up",
    )
    assert [e.message for e in events(seen, "ScalingReplicaSet")] == [
        next(e.message.replace(" to 2", " to 3") for e in events(earlier.seen, "ScalingReplicaSet"))
    ]
    created = [e.message.removeprefix("Created pod: ") for e in events(seen, "SuccessfulCreate")]
    assert len(created) == 1 and created[0] not in old_pods
    assert all(e.source.removeprefix("system/k8s/") not in old_pods for e in events(seen))


async def test_invalid_spec_is_rejected_before_anything_is_written(
    backend: KubernetesBackend, kube_api: Any, app_name: str
) -> None:
    bad = AppSpec(
        app=app_name,
        release_id="RBCDEFGHIJK",
        build_id="BBCDEFGHIJ",
        services=(Service("Web_1", "img"),),
    )
    with pytest.raises(InvalidArgument, match="invalid service name"):
        await backend.apply(bad)
    with pytest.raises(ApiException) as missing:
        await call(k8s.CoreV1Api(kube_api).read_namespace, f"relman-{app_name}")
    assert missing.value.status == 404


async def test_get_backend_builds_it_from_options_and_an_unreachable_cluster_is_unavailable(
    kube_cluster: KubeCluster, tmp_path: Any, app_name: str
) -> None:
    backend = get_backend("kubernetes", kubeconfig=str(kube_cluster.kubeconfig))
    assert isinstance(backend, KubernetesBackend) and backend.name == "kubernetes"
    await backend.close()

    # The same credentials, pointed at a port nobody listens on.
    text = kube_cluster.kubeconfig.read_text()
    dead = tmp_path / "kubeconfig"
    dead.write_text(re.sub(r"https://127\.0\.0\.1:\d+", f"https://127.0.0.1:{free_port()}", text))
    unreachable = KubernetesBackend(kubeconfig=str(dead))
    try:
        with pytest.raises(Unavailable, match="cannot reach the Kubernetes API server"):
            await unreachable.apply(app_spec(app_name, "RBCDEFGHIJK"))
    finally:
        await unreachable.close()

    with pytest.raises(InvalidArgument, match="cannot load Kubernetes configuration"):
        KubernetesBackend(kubeconfig=str(tmp_path / "missing"))


async def test_an_observer_with_refused_credentials_raises_unauthenticated(
    kube_cluster: KubeCluster, tmp_path: Any, app_name: str
) -> None:
    text = kube_cluster.kubeconfig.read_text()
    forged = tmp_path / "kubeconfig"
    forged.write_text(text.replace(kube_cluster.token, "not-a-valid-token"))
    backend = KubernetesBackend(kubeconfig=str(forged))
    try:
        observer = backend.observe(app_name)
        with pytest.raises(Unauthenticated, match="Unauthorized"):
            await asyncio.wait_for(observer.__anext__(), DEADLINE)
        assert await asyncio.to_thread(observer.join, 10.0)
    finally:
        await backend.close()
