"""The one small interface every deployment backend implements (``sim``, ``kubernetes``).

A backend knows nothing about releases' history, leases or rollback policy: it makes an app
look like an :class:`AppSpec` and reports what the cluster does about it, as Kubernetes-worded
events and rollout status snapshots. The Deployer's orchestrator decides what it all means.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from relman_common.errors import InvalidArgument
from relman_common.manifest import ReleaseCommand, Service
from relman_common.vocabulary import (
    RELEASE,
    check_id,
    env_key_error,
    service_name_error,
    validate_app_name,
)

from relman_deployer.domain.plan import ObjectPlan
from relman_deployer.rollout.arithmetic import deployment_complete
from relman_deployer.rollout.conditions import (
    AVAILABLE,
    PROGRESSING,
    DeploymentCondition,
    DeploymentStatus,
)

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600


@dataclass(frozen=True)
class AppSpec:
    """The whole desired state of an app: exactly these services, from this release.

    Services that exist in the cluster but not here are removed. An AppSpec with no services
    removes the app's workloads (a rollback of an app that had no earlier release).
    """

    app: str
    release_id: str
    build_id: str
    env: Mapping[str, str] = field(default_factory=dict)
    # The release's services, as the shared manifest model has them (images resolved).
    services: tuple[Service, ...] = ()
    # Each Deployment's progressDeadlineSeconds: the rollout fails when no pod moved forward
    # for longer (the orchestrator passes the deployment's timeout).
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_SECONDS


def check_spec(spec: AppSpec) -> None:
    """What every backend refuses before touching anything: names and keys the vocabulary
    does not allow, a release id that is not one, a service named twice."""
    validate_app_name(spec.app)
    if spec.services:
        check_id(RELEASE, spec.release_id, "release_id")
    for key in spec.env:
        error = env_key_error(key)
        if error:
            raise InvalidArgument(error)
    for service in spec.services:
        error = service_name_error(service.name)
        if error:
            raise InvalidArgument(error)
        if service.replicas < 0:
            raise InvalidArgument(f"service {service.name}: replicas must not be negative")
    names = [s.name for s in spec.services]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidArgument(f"duplicate service: {', '.join(twice)}")
    if not 0 < spec.progress_deadline_seconds < 2**31 - 1:  # MaxInt32 means "no deadline"
        raise InvalidArgument(
            f"invalid progress deadline: {spec.progress_deadline_seconds}s (must be positive)"
        )


@dataclass(frozen=True)
class BackendEvent:
    """Something the cluster did, worded as Kubernetes words it.

    ``source`` is ``system/k8s/<object name>`` (``system/k8s/web``,
    ``system/k8s/web-745f845dc``, ``system/k8s/web-745f845dc-rzl2q``); ``reason`` is the
    Kubernetes reason (ScalingReplicaSet, SuccessfulCreate, Scheduled, Pulling, Pulled, Created,
    Started, Killing, Unhealthy, BackOff, ...).
    """

    time: datetime
    source: str
    reason: str
    message: str
    # The Event's type: Normal or Warning (diagnostics keep the last warnings).
    type: str = "Normal"

    @property
    def warning(self) -> bool:
        return self.type == WARNING


WARNING = "Warning"


@dataclass(frozen=True)
class PodState:
    """One pod of a service's current template, as its kubelet reports it (``status``).

    ``state``/``reason``/``message`` are of its first container that is not running and ready
    (else of its first container): ``waiting`` with a reason such as ErrImagePull,
    ImagePullBackOff, InvalidImageName, CrashLoopBackOff or CreateContainerConfigError;
    ``terminated`` with OOMKilled, Error or Completed; ``running``; or "" before any container
    exists. ``last_termination`` is the reason the container last ended (OOMKilled, Error).
    ``unschedulable`` is the scheduler's message while the pod cannot be placed
    (``PodScheduled False Unschedulable``, the FailedScheduling Event's message).
    """

    name: str
    phase: str = "Pending"
    ready: bool = False
    restarts: int = 0
    container: str = ""
    image: str = ""
    state: str = ""
    reason: str = ""
    message: str = ""
    last_termination: str = ""
    exit_code: int | None = None
    unschedulable: str = ""


@dataclass(frozen=True)
class ServiceStatus:
    """Rollout progress of one service towards the release in the current AppSpec: the status
    its Deployment controller reports."""

    name: str
    desired: int
    # Pods of the current template / of any template / available.
    updated: int
    total: int
    available: int
    # Highest container restart count among the current template's pods.
    restarts: int = 0
    # Pods passing their readiness probe (``readyReplicas``).
    ready: int = 0
    # The Deployment's Progressing and Available conditions, as its controller set them.
    conditions: tuple[DeploymentCondition, ...] = ()
    # The pods of the current template, by name (what fail-fast and diagnostics read).
    pods: tuple[PodState, ...] = ()

    @property
    def complete(self) -> bool:
        """The Deployment controller's DeploymentComplete."""
        return deployment_complete(self.desired, self.updated, self.total, self.available)

    @property
    def progressing(self) -> DeploymentCondition | None:
        return self.condition(PROGRESSING)

    @property
    def availability(self) -> DeploymentCondition | None:
        return self.condition(AVAILABLE)

    def condition(self, type_: str) -> DeploymentCondition | None:
        for condition in self.conditions:
            if condition.type == type_:
                return condition
        return None

    def deployment_status(self) -> DeploymentStatus:
        """What the progress judge reads."""
        return DeploymentStatus(
            replicas=self.total,
            updated_replicas=self.updated,
            ready_replicas=self.ready,
            available_replicas=self.available,
            conditions=self.conditions,
        )


@dataclass(frozen=True)
class RolloutStatus:
    """A snapshot of the whole app against the release it is being moved to."""

    release_id: str
    services: tuple[ServiceStatus, ...]

    @property
    def complete(self) -> bool:
        return all(s.complete for s in self.services)


Observation = BackendEvent | RolloutStatus

# How many of a release command's last output lines its outcome keeps (for the reason a
# failed deployment gives), and how much of each line.
RELEASE_OUTPUT_TAIL = 5
RELEASE_OUTPUT_LINE_CHARS = 300
# The reason of the events carrying a release command's output lines.
OUTPUT_REASON = "Output"


@dataclass(frozen=True)
class ReleaseJob:
    """One run of a release's release command (SPEC 8): ``command`` in the image of
    ``service`` with the release's env, at most ``timeout_seconds``, no retries.

    ``name`` is ``<service>-release-<deployment id, lower-case>``: the Kubernetes Job's name and
    the source of its events (``system/k8s/<name>``); one deployment's run keeps its name, so a
    resumed deployment finds the run it started before.
    """

    spec: AppSpec
    service: Service
    command: tuple[str, ...]
    timeout_seconds: int
    name: str

    @property
    def app(self) -> str:
        return self.spec.app

    @property
    def source(self) -> str:
        return f"system/k8s/{self.name}"

    @property
    def env(self) -> Mapping[str, str]:
        """What the command's process sees: the release's env and the service's defaults."""
        return {**self.service.env_defaults(self.spec.env), **self.spec.env}


def release_job(spec: AppSpec, release: ReleaseCommand, deployment_id: str) -> ReleaseJob:
    """The run of ``release`` for the deployment ``deployment_id`` of ``spec``'s release."""
    check_spec(spec)
    services = {s.name: s for s in spec.services}
    service = services.get(release.service)
    if service is None:
        raise InvalidArgument(
            f"release.service: no service named {release.service!r} in release {spec.release_id}"
        )
    if not release.command:
        raise InvalidArgument("release.command must not be empty")
    if release.timeout <= 0:
        raise InvalidArgument(f"release.timeout must be positive, got {release.timeout}")
    return ReleaseJob(
        spec=spec,
        service=service,
        command=tuple(release.command),
        timeout_seconds=release.timeout,
        name=f"{service.name}-release-{deployment_id.lower()}",
    )


@dataclass(frozen=True)
class CommandOutcome:
    """How a release command ended: its exit code (None when it never exited: it timed out,
    or was not started), its last output lines, whether its deadline stopped it."""

    exit_code: int | None
    last_lines: tuple[str, ...] = ()
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


ReleaseOutput = BackendEvent | CommandOutcome


class OutputTail:
    """The last :data:`RELEASE_OUTPUT_TAIL` output lines of a command, each clipped.

    >>> tail = OutputTail()
    >>> for n in range(7):
    ...     _ = tail.add(f"line {n}")
    >>> tail.lines()
    ('line 2', 'line 3', 'line 4', 'line 5', 'line 6')
    """

    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(self, line: str) -> str:
        """Keep ``line`` (clipped, without its line end); returns what was kept."""
        kept = line.rstrip("\r\n")
        if len(kept) > RELEASE_OUTPUT_LINE_CHARS:
            kept = kept[: RELEASE_OUTPUT_LINE_CHARS - 3] + "..."
        self._lines.append(kept)
        del self._lines[:-RELEASE_OUTPUT_TAIL]
        return kept

    def lines(self) -> tuple[str, ...]:
        return tuple(self._lines)


class Backend(Protocol):
    """What the Deployer needs from a cluster."""

    name: str

    async def apply(self, spec: AppSpec) -> None:
        """Make ``spec`` the desired state of ``spec.app`` (idempotent)."""

    def observe(self, app: str) -> AsyncIterator[Observation]:
        """Events and status snapshots for ``app`` from now on, until the iterator is closed.

        Open it *before* :meth:`apply` so nothing is missed. A status snapshot is yielded at
        the start and whenever it changes (counts, restarts or conditions).
        """
        ...

    async def plan(self, spec: AppSpec) -> tuple[ObjectPlan, ...]:
        """The objects :meth:`apply` of ``spec`` would write, as they are now and as they would
        be, changing nothing (a dry run: no write, no event, no pod)."""
        ...

    def run_release_command(self, job: ReleaseJob) -> AsyncGenerator[ReleaseOutput, None]:
        """Run ``job`` once and stream what it does: events (the one-off's own, and each of
        its output lines from ``job.source`` with reason :data:`OUTPUT_REASON`), then, last,
        one :class:`CommandOutcome`.

        The run is stopped and cleaned up when the iterator is closed or the task reading it
        is cancelled before the outcome (a cancelled deployment); it is cleaned up after the
        outcome too. A run of the same ``job.name`` that is still there (a resumed deployment)
        is followed instead of started again.
        """
        ...

    async def pod_logs(self, app: str, pod: str, container: str, lines: int) -> list[str]:
        """The last ``lines`` lines ``container`` of ``pod`` wrote (its previous run when it
        restarted); [] when the backend has no logs (the sim runs no containers)."""
        ...

    async def close(self) -> None:
        """Release connections, tasks and threads."""
