"""The release command on the ``kubernetes`` backend against the local control plane: a
``batch/v1`` Job (the real Job controller and garbage collector; pods run to completion by the
kubelet emulator, which prints two lines and exits 1 when the env holds
``RELMAN_SIM_FAIL=release``), its pod's log streamed through the API server's ``pods/log``,
and the Job deleted afterwards; then the same through the Deployer: a failing command ends the
deployment before any Deployment of the release is written.

Every wait has a deadline that only turns a hang into a failure; nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from relman.v1 import deployer_pb2, release_pb2, types_pb2
from relman_common.errors import FailedPrecondition
from relman_common.manifest import ReleaseCommand, Service
from relman_deployer.backends.base import AppSpec, BackendEvent, CommandOutcome, release_job
from relman_deployer.backends.kubernetes import KubernetesBackend
from relman_deployer.backends.kubernetes.manifests import RELEASE_COMMAND_LABEL
from relman_deployer.backends.kubernetes.oneoff import job_result, start_job
from support.deployer import ACTOR, read_stream
from support.deployer_stack import Stack
from support.helpers import wait_for
from support.k8s_cluster import KubeCluster

pytestmark = pytest.mark.xdist_group("kube")

DEADLINE = 90.0  # seconds; generous, only to turn a hang into a failure
COMMAND = ReleaseCommand(command=("bin/migrate", "--all"), service="web", timeout=120)


def spec(app: str, env: dict[str, str]) -> AppSpec:
    web = Service(name="web", image=f"registry.example/{app}:web.1", command=("bin/web",))
    return AppSpec(
        app=app, release_id="RBCDEFGHIJK", build_id="BBCDEFGHIJK", env=env, services=(web,)
    )


async def run(
    backend: KubernetesBackend, app: str, env: dict[str, str]
) -> tuple[list[BackendEvent], CommandOutcome, str]:
    job = release_job(spec(app, env), COMMAND, "DABCDEFGHIJ")
    events: list[BackendEvent] = []
    async with (
        asyncio.timeout(DEADLINE),
        contextlib.aclosing(backend.run_release_command(job)) as items,
    ):
        async for item in items:
            if isinstance(item, BackendEvent):
                events.append(item)
            else:
                return events, item, job.name
    raise AssertionError("no outcome")


def leftovers(api: Any, app: str) -> list[str]:
    """The release command's Jobs and pods still in the app's namespace."""
    ns = f"relman-{app}"
    jobs = k8s.BatchV1Api(api).list_namespaced_job(ns, label_selector=RELEASE_COMMAND_LABEL)
    pods = k8s.CoreV1Api(api).list_namespaced_pod(ns, label_selector=RELEASE_COMMAND_LABEL)
    return [f"job/{j.metadata.name}" for j in jobs.items] + [
        f"pod/{p.metadata.name}" for p in pods.items
    ]


async def cleaned_up(api: Any, app: str) -> None:
    """Wait until the release command's Job and pods are gone."""
    await asyncio.to_thread(
        wait_for, lambda: not leftovers(api, app), DEADLINE, 0.1, "the Job and its pods deleted"
    )


async def test_a_release_command_runs_as_a_job_streams_its_log_and_is_deleted(
    backend: KubernetesBackend, kube_api: Any, app_name: str
) -> None:
    events, outcome, name = await run(backend, app_name, {"FOO": "bar"})

    assert outcome == CommandOutcome(
        exit_code=0,
        last_lines=(
            "[kubelet emulator] running bin/migrate --all",
            "[kubelet emulator] bin/migrate --all done",
        ),
    )
    by_source = [(e.source, e.reason, e.message) for e in events]
    output = [m for s, r, m in by_source if r == "Output"]
    assert output == list(outcome.last_lines)
    assert all(s == f"system/k8s/{name}" for s, r, _ in by_source if r == "Output")
    (created,) = [m for s, r, m in by_source if r == "SuccessfulCreate"]
    pod = created.removeprefix("Created pod: ")
    assert pod.startswith(f"{name}-")
    reasons = [r for s, r, _ in by_source if s == f"system/k8s/{pod}"]
    assert "Pulling" in reasons and "Started" in reasons
    assert f'Pulling image "registry.example/{app_name}:web.1"' in [m for _, _, m in by_source]
    await cleaned_up(kube_api, app_name)


async def test_a_failing_release_command_reports_its_exit_code_and_last_lines(
    backend: KubernetesBackend, kube_api: Any, app_name: str
) -> None:
    # The env reaches the pod through the release's Secret (envFrom), as a Deployment's does.
    _, outcome, _ = await run(backend, app_name, {"RELMAN_SIM_FAIL": "release"})

    assert outcome == CommandOutcome(
        exit_code=1,
        last_lines=(
            "[kubelet emulator] running bin/migrate --all",
            "[kubelet emulator] bin/migrate --all failed: RELMAN_SIM_FAIL=release",
        ),
    )
    assert not outcome.succeeded
    await cleaned_up(kube_api, app_name)


async def test_closing_a_running_release_command_deletes_its_job_and_pod(
    backend: KubernetesBackend, kube_api: Any, app_name: str
) -> None:
    """What a cancelled deployment does: the reader goes away while the container runs (the
    emulator runs ``sleep``), the Job and its pod are deleted."""
    sleeping = ReleaseCommand(command=("sleep", "3600"), service="web", timeout=3600)
    job = release_job(spec(app_name, {}), sleeping, "DABCDEFGHIJ")
    items = backend.run_release_command(job)
    async with asyncio.timeout(DEADLINE):
        async for item in items:
            assert isinstance(item, BackendEvent), item
            if item.reason == "Output":  # the container runs: its log is being read
                break
    assert len(await asyncio.to_thread(leftovers, kube_api, app_name)) == 2  # Job and pod
    await items.aclose()
    await cleaned_up(kube_api, app_name)


async def test_a_release_command_past_its_deadline_is_stopped_by_the_job_controller(
    backend: KubernetesBackend, kube_api: Any, app_name: str
) -> None:
    sleeping = ReleaseCommand(command=("sleep", "3600"), service="web", timeout=2)
    job = release_job(spec(app_name, {}), sleeping, "DABCDEFGHIJ")
    events: list[BackendEvent] = []
    async with (
        asyncio.timeout(DEADLINE),
        contextlib.aclosing(backend.run_release_command(job)) as items,
    ):
        async for item in items:
            if isinstance(item, BackendEvent):
                events.append(item)
            else:
                outcome = item
    assert outcome.timed_out and not outcome.succeeded
    assert outcome.last_lines == ("[kubelet emulator] running sleep 3600",)
    assert (job.source, "DeadlineExceeded", "Job was active longer than specified deadline") in [
        (e.source, e.reason, e.message) for e in events
    ]
    await cleaned_up(kube_api, app_name)


async def test_a_job_left_by_a_crashed_deployer_is_followed_not_started_again(
    backend: KubernetesBackend, kube_api: Any, app_name: str
) -> None:
    job = release_job(spec(app_name, {}), COMMAND, "DABCDEFGHIJ")
    # What a Deployer that crashed leaves: its Job, run to its end, not deleted.
    await asyncio.to_thread(start_job, kube_api, "relman", job)
    batch = k8s.BatchV1Api(kube_api)

    def complete() -> bool:
        found = batch.read_namespaced_job(job.name, f"relman-{app_name}")
        return job_result(found.to_dict() | {"status": _status(found)}) is not None

    await asyncio.to_thread(wait_for, complete, DEADLINE, 0.1, "the Job's end")

    events, outcome, _ = await run(backend, app_name, {})

    assert outcome == CommandOutcome(
        exit_code=0,
        last_lines=(
            "[kubelet emulator] running bin/migrate --all",
            "[kubelet emulator] bin/migrate --all done",
        ),
    )
    assert not [e for e in events if e.reason == "SuccessfulCreate"]  # no second pod
    await cleaned_up(kube_api, app_name)

    # A Job of the same name for another release is not taken for this run's.
    other = release_job(
        AppSpec(app_name, "RZZZZZZZZZZ", "BZZZZZZZZZZ", {}, spec(app_name, {}).services),
        COMMAND,
        "DABCDEFGHIJ",
    )
    await asyncio.to_thread(start_job, kube_api, "relman", other)
    with pytest.raises(FailedPrecondition) as err:
        await run(backend, app_name, {})
    assert "exists for another run (release RZZZZZZZZZZ)" in str(err.value)
    assert await asyncio.to_thread(leftovers, kube_api, app_name)  # not deleted: not its own


def _status(job: Any) -> dict[str, Any]:
    """A Job's status as the API writes it (conditions with their JSON keys)."""
    conditions = job.status.conditions or []
    return {"conditions": [{"type": c.type, "status": c.status} for c in conditions]}


@pytest.fixture
async def kube_stack(
    kube_cluster: KubeCluster, sqlite_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    """Both services in the test's process, the Deployer on the kubernetes backend."""
    stack = Stack(sqlite_url, tmp_path / "release")
    await stack.start_release()
    backend = KubernetesBackend(kubeconfig=str(kube_cluster.kubeconfig), watch_timeout_seconds=10)
    try:
        await stack.start_deployer(backend=backend, lease_ttl=5.0)
        yield stack
    finally:
        await stack.close()


async def test_a_failing_release_command_never_reaches_the_releases_pods(
    kube_stack: Stack, kube_api: Any, app_name: str
) -> None:
    stack = kube_stack
    assert stack.deployer is not None
    manifest = (
        "release:\n  command: bin/migrate --all\n"
        "services:\n  web:\n    build: .\n    scale: {count: 1}\n"
    )
    await stack.release.CreateApp(release_pb2.CreateAppRequest(name=app_name), metadata=ACTOR)
    imported = await stack.release.ImportBuild(
        release_pb2.ImportBuildRequest(
            app=app_name, manifest=manifest, images={"web": f"registry.example/{app_name}:web.1"}
        ),
        metadata=ACTOR,
    )
    first = imported.release.id
    got = await asyncio.wait_for(
        read_stream(stack.deployer.Promote(deployer_pb2.PromoteRequest(app=app_name))), DEADLINE
    )
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_SUCCEEDED, got.messages
    output = f"system/k8s/web-release-{got.first.id.lower()}"
    assert [e.message for e in got.events if e.source == output and e.reason == "Output"] == [
        "[kubelet emulator] running bin/migrate --all",
        "[kubelet emulator] bin/migrate --all done",
    ]
    apps = k8s.AppsV1Api(kube_api)
    ns = f"relman-{app_name}"

    def template_release() -> str:
        dep = apps.read_namespaced_deployment("web", ns)
        return str(dep.spec.template.metadata.annotations["relman.io/release"])

    assert await asyncio.to_thread(template_release) == first

    changed = await stack.release.ChangeEnv(
        release_pb2.ChangeEnvRequest(app=app_name, set={"RELMAN_SIM_FAIL": "release"}),
        metadata=ACTOR,
    )
    got = await asyncio.wait_for(
        read_stream(
            stack.deployer.Promote(
                deployer_pb2.PromoteRequest(app=app_name, release_id=changed.release.id)
            )
        ),
        DEADLINE,
    )
    assert got.last is not None and got.last.outcome == types_pb2.OUTCOME_FAILED, got.messages
    assert got.last.reason == (
        "release command bin/migrate --all exited with code 1; last output: "
        "[kubelet emulator] running bin/migrate --all | "
        "[kubelet emulator] bin/migrate --all failed: RELMAN_SIM_FAIL=release"
    )
    assert got.statuses == ["Status: Running => Pending", "Status: Pending => Running"]
    # The Deployment still runs the first release's template; no pod of the new one exists.
    assert await asyncio.to_thread(template_release) == first

    def release_pods() -> list[str]:
        pods = k8s.CoreV1Api(kube_api).list_namespaced_pod(
            ns, label_selector="app.kubernetes.io/name=web"
        )
        return [
            p.metadata.name
            for p in pods.items
            if p.metadata.annotations.get("relman.io/release") != first
        ]

    assert await asyncio.to_thread(release_pods) == []
    await cleaned_up(kube_api, app_name)
    app = await stack.release.GetApp(release_pb2.GetAppRequest(name=app_name))
    assert app.active_release_id == first
