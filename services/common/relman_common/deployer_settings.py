"""The Deployer's own settings: its backend and how it runs deployments (part of
:data:`relman_common.settings.SETTINGS`)."""

from __future__ import annotations

from relman_common.setting import (
    NOT_NEGATIVE,
    NUMBER,
    POSITIVE,
    TEXT,
    WHOLE_NUMBER,
    Setting,
)
from relman_common.settings_programs import DEPLOYER

BACKEND = Setting(
    "RELMAN_BACKEND",
    TEXT,
    "sim",
    "where apps run: sim (a simulated cluster) or kubernetes",
    flags={DEPLOYER: "--backend"},
)

SIM_POD_DELAY = Setting(
    "RELMAN_SIM_POD_DELAY",
    NUMBER,
    1.0,
    "sim backend: seconds from pod creation to ready",
    flags={DEPLOYER: "--sim-pod-delay"},
    rule=NOT_NEGATIVE,
)

KUBECONFIG = Setting(
    "RELMAN_KUBECONFIG",
    TEXT,
    "",
    "kubernetes backend: kubeconfig file",
    flags={DEPLOYER: "--kubeconfig"},
    unset="$KUBECONFIG, then in-cluster config, then ~/.kube/config",
    fallback="KUBECONFIG",
)

KUBE_CONTEXT = Setting(
    "RELMAN_KUBE_CONTEXT",
    TEXT,
    "",
    "kubernetes backend: kubeconfig context",
    flags={DEPLOYER: "--kube-context"},
    unset="the kubeconfig's current context",
)

NAMESPACE_PREFIX = Setting(
    "RELMAN_NAMESPACE_PREFIX",
    TEXT,
    "relman",
    "namespaces are <prefix>-<app>",
    flags={DEPLOYER: "--namespace-prefix"},
)

LEASE_TTL = Setting(
    "RELMAN_LEASE_TTL",
    NUMBER,
    15.0,
    "seconds a deployment's lease lives without renewal",
    flags={DEPLOYER: "--lease-ttl"},
    rule=POSITIVE,
)

CRASHLOOP_THRESHOLD = Setting(
    "RELMAN_CRASHLOOP_THRESHOLD",
    WHOLE_NUMBER,
    3,
    "container restarts that count as a crash loop",
    flags={DEPLOYER: "--crashloop-threshold"},
)

SCHEDULING_GRACE = Setting(
    "RELMAN_SCHEDULING_GRACE",
    NUMBER,
    30.0,
    "seconds a new pod may stay unschedulable (FailedScheduling) before the rollout fails",
    flags={DEPLOYER: "--scheduling-grace"},
    rule=POSITIVE,
)

DEFAULT_TIMEOUT = Setting(
    "RELMAN_DEFAULT_TIMEOUT",
    WHOLE_NUMBER,
    600,
    "progress deadline in seconds when a request gives none",
    flags={DEPLOYER: "--default-timeout"},
    rule=POSITIVE,
)
