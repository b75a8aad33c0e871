"""How ``relman deployments info`` prints a deployment's diagnostics."""

from __future__ import annotations

import doctest

from relman.v1 import deployer_pb2
from relman_cli.commands import _diagnostics
from relman_cli.commands._diagnostics import diagnostics_lines, pod_state
from relman_cli.commands.deployments import info_result

Pod = deployer_pb2.PodDiagnostics


def test_doc_examples_hold() -> None:
    failures, tried = doctest.testmod(_diagnostics)
    assert tried > 0 and failures == 0


def test_a_deployment_without_diagnostics_prints_its_rows_only() -> None:
    d = deployer_pb2.Deployment(id="DABCDEFGHIJ", app="myapp")
    result = info_result(d)
    assert result.lines[:2] == ["Id        DABCDEFGHIJ", "App       myapp"]
    assert "" not in result.lines and diagnostics_lines(d) == []


def test_pod_states_say_the_condition_and_the_last_exit() -> None:
    assert pod_state(Pod(state="running")) == "running"
    assert pod_state(Pod(state="waiting", reason="ErrImagePull")) == "waiting: ErrImagePull"
    crash = Pod(
        state="waiting", reason="CrashLoopBackOff", last_termination="OOMKilled", exit_code=137
    )
    assert pod_state(crash) == "waiting: CrashLoopBackOff (last OOMKilled, exit 137)"
    assert pod_state(Pod(unschedulable="0/2 nodes are available.")) == "pending: FailedScheduling"


def test_several_services_name_each_pods_service_and_logs_follow() -> None:
    d = deployer_pb2.Deployment(
        id="DABCDEFGHIJ",
        diagnostics=[
            deployer_pb2.ServiceDiagnostics(
                name="web",
                desired=1,
                pods=[
                    Pod(
                        name="web-1",
                        phase="Running",
                        restarts=4,
                        state="waiting",
                        reason="CrashLoopBackOff",
                        last_termination="Error",
                        exit_code=3,
                        logs=["starting", "error: no database"],
                    )
                ],
            ),
            deployer_pb2.ServiceDiagnostics(
                name="worker",
                desired=2,
                pods=[Pod(name="worker-1", phase="Pending", unschedulable="0/2 nodes.")],
            ),
        ],
    )
    lines = diagnostics_lines(d)
    pods = lines.index(next(line for line in lines if line.startswith("POD ")))
    assert lines[pods].split() == [
        "POD",
        "SERVICE",
        "PHASE",
        "READY",
        "RESTARTS",
        "STATE",
        "MESSAGE",
    ]
    assert lines[pods + 1].split()[:5] == ["web-1", "web", "Running", "no", "4"]
    assert lines[pods + 2].split() == [
        "worker-1",
        "worker",
        "Pending",
        "no",
        "0",
        "pending:",
        "FailedScheduling",
        "0/2",
        "nodes.",
    ]
    assert lines[-4:] == ["", "LOGS web-1", "  starting", "  error: no database"]
    assert "WARNING EVENTS" not in lines  # none recorded
