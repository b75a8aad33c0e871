"""The ``kubernetes`` backend: a real cluster through a kubeconfig or in-cluster config.

Per app a namespace ``<prefix>-<app>`` (labelled ``app.kubernetes.io/managed-by=relman``); per
release an immutable Secret ``env-<release id>`` with the env; per service a Deployment whose
pod template takes its env from that Secret (``envFrom``) and carries the release id as an
annotation, so every release gets a ReplicaSet of its own and applying an earlier release again
scales that release's old ReplicaSet back up with exactly its config.

The parts: :mod:`.manifests` builds what is written (pure), :mod:`.apply` writes it with
server-side apply, :mod:`.dryrun` shows what that apply would change (a dry-run apply,
nothing written), :mod:`.watch` lists and watches one kind of object in a thread,
:mod:`.status` reads observations off the objects (pure), :mod:`.observer` turns an app's
watches into a stream of observations, :mod:`.oneoff` runs a release command as a Job,
:mod:`.errors` turns client failures into the project's errors, and :mod:`.backend` is
:class:`KubernetesBackend`. This package is the only code that imports the Kubernetes client
library.
"""

from relman_deployer.backends.kubernetes.backend import KubernetesBackend
from relman_deployer.backends.kubernetes.observer import KubernetesObserver

__all__ = ["KubernetesBackend", "KubernetesObserver"]
