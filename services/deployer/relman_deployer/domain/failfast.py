"""Pod states that cannot heal by waiting: the rollout ends at once instead of at its deadline.

Pure: a pod's state in, the reason for people out (naming the service, the pod and the
condition). Kubernetes keeps retrying all of these, but none gets better without a new
release: an image that cannot be pulled, a container that keeps crashing or running out of
memory, a container whose config (a Secret, a ConfigMap) is missing, a pod no node can take.

>>> from relman_deployer.backends.base import PodState
>>> pull = PodState("web-5d4f8b7c9-rzl2q", image="reg/x:y", state="waiting",
...                 reason="ImagePullBackOff", message='Back-off pulling image "reg/x:y"')
>>> immediate_failure("web", pull, crashloop_threshold=3)
'pods of web cannot pull image "reg/x:y": ImagePullBackOff (pod web-5d4f8b7c9-rzl2q)'
>>> first_try = PodState("web-1", image="reg/x:y", state="waiting", reason="ErrImagePull")
>>> immediate_failure("web", first_try, crashloop_threshold=3) is None  # kubelet retries once
True
>>> crash = PodState("w-1", restarts=3, state="waiting", reason="CrashLoopBackOff",
...                  last_termination="Error", exit_code=1)
>>> print(immediate_failure("web", crash, crashloop_threshold=3))
pods of web crash-looping (restarted 3 times): CrashLoopBackOff, last exit Error (code 1) (pod w-1)
>>> unschedulable_failure("web", PodState("web-1", unschedulable="0/2 nodes are available."), 30)
'pods of web cannot be scheduled for 30s: FailedScheduling: 0/2 nodes are available. (pod web-1)'
"""

from __future__ import annotations

from relman_deployer.backends.base import PodState

# Waiting reasons of an image that cannot be had. ErrImagePull alone is the first failed try:
# the kubelet then backs off (ImagePullBackOff), and that is what ends the rollout, so a
# registry hiccup that the next pull survives does not.
PULL_BACK_OFF = "ImagePullBackOff"
ERR_IMAGE_PULL = "ErrImagePull"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE_NAME = "InvalidImageName"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
OOM_KILLED = "OOMKilled"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
FAILED_SCHEDULING = "FailedScheduling"

DEFAULT_SCHEDULING_GRACE_SECONDS = 30

# Every condition fail-fast acts on (what the README's list names).
CONDITIONS = (
    ERR_IMAGE_PULL,
    PULL_BACK_OFF,
    INVALID_IMAGE_NAME,
    CRASH_LOOP_BACK_OFF,
    OOM_KILLED,
    CREATE_CONTAINER_CONFIG_ERROR,
    FAILED_SCHEDULING,
)


def immediate_failure(service: str, pod: PodState, *, crashloop_threshold: int) -> str | None:
    """Why ``pod`` of ``service`` can never become ready (None: it still may)."""
    where = f"(pod {pod.name})"
    detail = f": {pod.message}" if pod.message else ""
    if pod.reason in (PULL_BACK_OFF, ERR_IMAGE_NEVER_PULL):
        return f'pods of {service} cannot pull image "{pod.image}": {pod.reason} {where}'
    if pod.reason == INVALID_IMAGE_NAME:
        return f'pods of {service} have an invalid image name "{pod.image}"{detail} {where}'
    if pod.reason == CREATE_CONTAINER_CONFIG_ERROR:
        return f"pods of {service} cannot start: {pod.reason}{detail} {where}"
    if OOM_KILLED in (pod.reason, pod.last_termination):
        return f"pods of {service} ran out of memory: {OOM_KILLED} {where}"
    if (
        pod.reason == CRASH_LOOP_BACK_OFF
        and crashloop_threshold > 0
        and pod.restarts >= crashloop_threshold
    ):
        last = ""
        if pod.last_termination:
            code = f" (code {pod.exit_code})" if pod.exit_code is not None else ""
            last = f", last exit {pod.last_termination}{code}"
        return (
            f"pods of {service} crash-looping (restarted {pod.restarts} times): "
            f"{CRASH_LOOP_BACK_OFF}{last} {where}"
        )
    return None


def unschedulable_failure(service: str, pod: PodState, grace_seconds: float) -> str:
    """The reason for ``pod`` that has been unschedulable for ``grace_seconds``."""
    grace = f"{grace_seconds:g}s"
    return (
        f"pods of {service} cannot be scheduled for {grace}: {FAILED_SCHEDULING}: "
        f"{pod.unschedulable} (pod {pod.name})"
    )
