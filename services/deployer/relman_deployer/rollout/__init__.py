"""Rolling-update arithmetic and the progress judge, pure (no gRPC, no SQL, no clock of its own)."""

from relman_deployer.rollout.arithmetic import (
    ReplicaSetCounts,
    RollingStrategy,
    Scale,
    cleanup_unhealthy_replicas,
    deployment_complete,
    max_surge,
    max_unavailable,
    new_rs_new_replicas,
    reconcile_old_replica_sets,
    resolve_fenceposts,
    rolling_step,
)
from relman_deployer.rollout.conditions import (
    AVAILABLE,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    DeploymentCondition,
    DeploymentStatus,
    get_condition,
)
from relman_deployer.rollout.progress import (
    Rollout,
    deployment_progressing,
    deployment_timed_out,
    new_replica_set_condition,
    requeue_after,
    sync_rollout_status,
)

__all__ = [
    "AVAILABLE",
    "PROGRESSING",
    "PROGRESS_DEADLINE_EXCEEDED",
    "DeploymentCondition",
    "DeploymentStatus",
    "ReplicaSetCounts",
    "RollingStrategy",
    "Rollout",
    "Scale",
    "cleanup_unhealthy_replicas",
    "deployment_complete",
    "deployment_progressing",
    "deployment_timed_out",
    "get_condition",
    "max_surge",
    "max_unavailable",
    "new_replica_set_condition",
    "new_rs_new_replicas",
    "reconcile_old_replica_sets",
    "requeue_after",
    "resolve_fenceposts",
    "rolling_step",
    "sync_rollout_status",
]
