"""The Deployer's domain: deployments, their events, guards, manifests and rollout policy.

Nothing here imports gRPC or SQL.
"""
