"""Rolling-update arithmetic and progress judgement, pure (no gRPC, no SQL, no clock of its own)."""

from relman_deployer.rollout.arithmetic import (
    ReplicaSetCounts,
    RollingStrategy,
    Scale,
    cleanup_unhealthy_replicas,
    deployment_complete,
    max_surge,
    max_unavailable,
    new_rs_new_replicas,
    reconcile_new_replica_set,
    reconcile_old_replica_sets,
    resolve_fenceposts,
    rolling_step,
    scale_down_old_replica_sets_for_rolling_update,
    scaled_value_from_percent,
)
from relman_deployer.rollout.progress import (
    DeploymentCounts,
    ProgressTracker,
    deployment_progressing,
    deployment_timed_out,
)

__all__ = [
    "DeploymentCounts",
    "ProgressTracker",
    "ReplicaSetCounts",
    "RollingStrategy",
    "Scale",
    "cleanup_unhealthy_replicas",
    "deployment_complete",
    "deployment_progressing",
    "deployment_timed_out",
    "max_surge",
    "max_unavailable",
    "new_rs_new_replicas",
    "reconcile_new_replica_set",
    "reconcile_old_replica_sets",
    "resolve_fenceposts",
    "rolling_step",
    "scale_down_old_replica_sets_for_rolling_update",
    "scaled_value_from_percent",
]
