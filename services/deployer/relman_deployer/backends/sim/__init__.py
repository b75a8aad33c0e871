"""The ``sim`` backend: an in-process cluster that rolls out like the Deployment controller.

Per app a namespace ``relman-<app>``; per service a Deployment whose ReplicaSets are named
``<service>-<pod-template-hash>`` and whose pods are ``<replicaset>-<5 chars>``, each on its own
node ``instance-<12 hex>``. Its Deployment and ReplicaSet controllers (:mod:`.controllers`)
take the steps Kubernetes' do, record the same ``ScalingReplicaSet`` events, and have the
Deployment's status written by the one progress judge, so a rollout that stops moving fails
with ``ProgressDeadlineExceeded`` without anybody polling.

Pods take ``pod_delay`` seconds from creation to ready (half to pull and start, half to pass
readiness). The pods one sync of a ReplicaSet creates form a batch that steps together: they
become ready at the same moment and the Deployment controller then runs once for all of them,
as it does when the ReplicaSet controller reports them in one status update (one controller
pass per pod would take twice the ScalingReplicaSet steps a real cluster takes). Nothing runs
a task per pod: batch steps are event-loop timer callbacks (``call_soon`` when ``pod_delay``
is 0), and all state changes happen synchronously inside them, so there are no locks and no
partial states to observe.

Failures are chosen by the release's environment, visibly: ``RELMAN_SIM_FAIL=crash`` makes the
new pods crash-loop (``BackOff`` every ``retry_interval`` seconds, restarts counted, waiting in
``CrashLoopBackOff``), ``oom`` the same with each exit ``OOMKilled``, ``unready`` makes them run
but fail readiness (``Unhealthy``) and ``pull`` makes their image unpullable (``Failed``
events, waiting in ``ErrImagePull`` then ``ImagePullBackOff``). Each pod's state is reported in
:class:`~relman_deployer.backends.base.PodState` as a kubelet reports it. The variable is
part of the pod template, so pods of earlier templates stay healthy and a rollback to the
previous release scales its old ReplicaSet (same template hash) back up.

A release command (:mod:`.oneoff`) is a simulated one-off worded as a Kubernetes Job's run:
it prints two lines and exits 0, or 1 when the release's env holds ``RELMAN_SIM_FAIL=release``
(the release's pods are healthy then: only its command fails); it takes ``pod_delay`` seconds
and is stopped at its timeout.

State lives in memory only; a restarted Deployer re-applies its release and the sim builds it.

The parts: :mod:`.model` (the objects), :mod:`.names` (Kubernetes' names for them),
:mod:`.cluster` (what the parts share), :mod:`.controllers` (Deployment and ReplicaSet
controllers), :mod:`.pods` (the kubelet's timers), :mod:`.oneoff` (release commands),
:mod:`.dryrun` (what an apply would change, for a promote's dry run), :mod:`.observer` and
:mod:`.backend` (:class:`SimBackend`, the Backend interface).
"""

from relman_deployer.backends.sim.backend import SimBackend
from relman_deployer.backends.sim.model import FAIL_ENV
from relman_deployer.backends.sim.observer import SimObserver

__all__ = ["FAIL_ENV", "SimBackend", "SimObserver"]
