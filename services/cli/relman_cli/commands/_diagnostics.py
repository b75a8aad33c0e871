"""A deployment's diagnostics as ``relman deployments info`` prints them: per service its
counts, each pod's state and restarts, the last warning events and the failing pods' last log
lines (kubernetes), as tables under the deployment's rows.

>>> from relman.v1 import deployer_pb2
>>> d = deployer_pb2.Deployment(id="D1", diagnostics=[deployer_pb2.ServiceDiagnostics(
...     name="web", desired=2, updated=1, ready=0, available=0, pods=[
...         deployer_pb2.PodDiagnostics(name="web-5d4f8b7c9-rzl2q", phase="Pending",
...             state="waiting", reason="ImagePullBackOff",
...             message='Back-off pulling "r:1"')],
...     events=[deployer_pb2.WarningEvent(source="system/k8s/web-5d4f8b7c9-rzl2q",
...             reason="Failed", message="Error: ImagePullBackOff")])])
>>> d.diagnostics[0].events[0].time.FromSeconds(1546300851)
>>> print("\\n".join(diagnostics_lines(d)))
<BLANKLINE>
SERVICE  DESIRED  UPDATED  READY  AVAILABLE
web      2        1        0      0
<BLANKLINE>
POD                  PHASE    READY  RESTARTS  STATE                      MESSAGE
web-5d4f8b7c9-rzl2q  Pending  no     0         waiting: ImagePullBackOff  Back-off pulling "r:1"
<BLANKLINE>
WARNING EVENTS
2019-01-01T00:00:51Z system/k8s/web-5d4f8b7c9-rzl2q Failed: Error: ImagePullBackOff
"""

from __future__ import annotations

from relman.v1 import deployer_pb2

from relman_cli import output
from relman_cli.commands._messages import when


def pod_state(p: deployer_pb2.PodDiagnostics) -> str:
    """``waiting: CrashLoopBackOff (last OOMKilled, exit 137)``, ``pending: FailedScheduling``."""
    if p.unschedulable:
        return "pending: FailedScheduling"
    text = f"{p.state}: {p.reason}" if p.reason else p.state
    if p.last_termination:
        code = f", exit {p.exit_code}" if p.HasField("exit_code") else ""
        text += f" (last {p.last_termination}{code})"
    return text


def diagnostics_lines(d: deployer_pb2.Deployment) -> list[str]:
    services = list(d.diagnostics)
    if not services:
        return []
    lines = [""]
    lines += output.table(
        ["SERVICE", "DESIRED", "UPDATED", "READY", "AVAILABLE"],
        [
            [s.name, str(s.desired), str(s.updated), str(s.ready), str(s.available)]
            for s in services
        ],
    )
    pods = [(s.name, p) for s in services for p in s.pods]
    if pods:
        several = len(services) > 1
        headers = ["POD", *(["SERVICE"] if several else []), "PHASE", "READY", "RESTARTS"]
        rows = [
            [
                p.name,
                *([service] if several else []),
                p.phase,
                "yes" if p.ready else "no",
                str(p.restarts),
                pod_state(p),
                p.unschedulable or p.message,
            ]
            for service, p in pods
        ]
        lines += ["", *output.table([*headers, "STATE", "MESSAGE"], rows)]
    events = [e for s in services for e in s.events]
    if events:
        lines += ["", "WARNING EVENTS"]
        lines += [
            output.event_line(when(e, "time"), e.source, f"{e.reason}: {e.message}")
            for e in sorted(events, key=lambda e: (e.time.seconds, e.time.nanos))
        ]
    for _, p in pods:
        if p.logs:
            lines += ["", f"LOGS {p.name}", *(f"  {line}" for line in p.logs)]
    return lines
