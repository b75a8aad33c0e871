"""The release command's pure parts and the sim's one-off, in process (the Deployer around
them is in tests/integration/deployer/test_deployer_release_command.py, the kubernetes Job in
tests/e2e/kubernetes/test_kubernetes_release_command.py)."""

from __future__ import annotations

import contextlib
import doctest
from typing import Any

import pytest
from relman_common.errors import InvalidArgument
from relman_common.manifest import EnvSpec, ReleaseCommand, Service
from relman_deployer.backends import base
from relman_deployer.backends.base import AppSpec, BackendEvent, CommandOutcome, release_job
from relman_deployer.backends.kubernetes import oneoff as kubernetes_oneoff
from relman_deployer.backends.kubernetes.manifests import RELEASE_COMMAND_LABEL, job_manifest
from relman_deployer.backends.sim import SimBackend
from relman_deployer.domain import release_command

WEB = Service("web", "registry/app:web.1", command=("bin/web",))
WORKER = Service("worker", "registry/app:worker.1", environment=(EnvSpec("MODE", "batch"),))
MIGRATE = ReleaseCommand(command=("bin/migrate", "--all"), service="worker", timeout=30)


def spec(env: dict[str, str] | None = None) -> AppSpec:
    return AppSpec("myapp", "RBCDEFGHIJK", "BBCDEFGHIJK", env or {"FOO": "bar"}, (WEB, WORKER))


@pytest.mark.parametrize("module", [release_command, base, kubernetes_oneoff])
def test_doc_examples_hold(module: Any) -> None:
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0


def test_a_run_is_named_after_its_service_and_deployment_and_sees_the_release_env() -> None:
    job = release_job(spec(), MIGRATE, "DABCDEFGHIJ")
    assert (job.name, job.source) == (
        "worker-release-dabcdefghij",
        "system/k8s/worker-release-dabcdefghij",
    )
    assert job.service is WORKER and job.command == ("bin/migrate", "--all")
    assert job.timeout_seconds == 30
    assert job.env == {"FOO": "bar", "MODE": "batch"}
    assert release_job(spec({"MODE": "x"}), MIGRATE, "DABCDEFGHIJ").env == {"MODE": "x"}


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            ReleaseCommand(("bin/migrate",), "cron"),
            "release.service: no service named 'cron' in release RBCDEFGHIJK",
        ),
        (ReleaseCommand((), "web"), "release.command must not be empty"),
        (ReleaseCommand(("x",), "web", timeout=0), "release.timeout must be positive, got 0"),
    ],
)
def test_a_run_the_manifest_could_not_hold_is_refused(
    command: ReleaseCommand, message: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        release_job(spec(), command, "DABCDEFGHIJ")
    assert str(err.value) == message


def test_the_job_runs_the_service_image_with_the_release_secret_once() -> None:
    job = release_job(spec(), MIGRATE, "DABCDEFGHIJ")
    body = job_manifest(job, "relman-myapp")
    assert body["metadata"]["name"] == "worker-release-dabcdefghij"
    assert body["metadata"]["labels"][RELEASE_COMMAND_LABEL] == job.name
    assert body["spec"]["backoffLimit"] == 0
    assert body["spec"]["activeDeadlineSeconds"] == 30
    pod = body["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (main,) = pod["containers"]
    assert main["image"] == "registry/app:worker.1"
    assert main["args"] == ["bin/migrate", "--all"]
    assert main["envFrom"] == [{"secretRef": {"name": "env-rbcdefghijk"}}]
    assert main["env"] == [{"name": "MODE", "value": "batch"}]


def test_a_failure_reason_names_the_command_the_code_and_the_last_lines() -> None:
    lines = tuple(f"line {n}" for n in range(3))
    assert release_command.failure(("bin/migrate",), 30, CommandOutcome(2, lines)) == (
        "release command bin/migrate exited with code 2; last output: line 0 | line 1 | line 2"
    )
    assert release_command.failure(("bin/migrate",), 30, CommandOutcome(None)) == (
        "release command bin/migrate ended without an exit code; no output"
    )
    assert release_command.announcement(("bin/migrate", "a b")) == (
        "Running release command: bin/migrate 'a b'"
    )


def test_the_output_tail_keeps_the_last_lines_clipped() -> None:
    tail = base.OutputTail()
    assert tail.add("x" * 1000 + "\n") == "x" * 297 + "..."
    for n in range(10):
        tail.add(f"{n}\r\n")
    assert tail.lines() == ("5", "6", "7", "8", "9")


async def collect(sim: SimBackend, env: dict[str, str]) -> tuple[list[BackendEvent], Any]:
    job = release_job(spec(env), MIGRATE, "DABCDEFGHIJ")
    events: list[BackendEvent] = []
    async with contextlib.aclosing(sim.run_release_command(job)) as items:
        async for item in items:
            if isinstance(item, BackendEvent):
                events.append(item)
            else:
                return events, item
    raise AssertionError("no outcome")


async def test_the_sim_one_off_succeeds_or_fails_as_the_env_says() -> None:
    sim = SimBackend(pod_delay=0, seed=1)
    events, outcome = await collect(sim, {})
    assert outcome == CommandOutcome(
        0, ("[sim] running bin/migrate --all", "[sim] bin/migrate --all done")
    )
    assert [e.reason for e in events] == [
        "SuccessfulCreate",
        "Scheduled",
        "Pulling",
        "Pulled",
        "Created",
        "Started",
        "Output",
        "Output",
        "Completed",
    ]
    assert events[2].message == 'Pulling image "registry/app:worker.1"'

    events, outcome = await collect(sim, {"RELMAN_SIM_FAIL": "release"})
    assert outcome.exit_code == 1 and not outcome.succeeded
    assert outcome.last_lines[-1] == "[sim] bin/migrate --all failed: RELMAN_SIM_FAIL=release"
    assert events[-1].reason == "BackoffLimitExceeded"
    assert sim.release_commands() == {"worker-release-dabcdefghij": "failed"}


async def test_closing_the_sim_one_off_before_its_end_stops_it() -> None:
    sim = SimBackend(pod_delay=60)
    items = sim.run_release_command(release_job(spec(), MIGRATE, "DABCDEFGHIJ"))
    first = await anext(items)
    assert isinstance(first, BackendEvent) and first.reason == "SuccessfulCreate"
    assert sim.release_commands() == {"worker-release-dabcdefghij": "running"}
    await items.aclose()
    assert sim.release_commands() == {"worker-release-dabcdefghij": "stopped"}


async def test_the_sim_refuses_a_failure_mode_it_does_not_know() -> None:
    sim = SimBackend(pod_delay=0)
    with pytest.raises(InvalidArgument) as err:
        await collect(sim, {"RELMAN_SIM_FAIL": "explode"})
    assert str(err.value) == (
        "RELMAN_SIM_FAIL must be one of crash, unready, pull, oom, release, not 'explode'"
    )
