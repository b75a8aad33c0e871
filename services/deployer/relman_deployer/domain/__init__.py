"""The Deployer's domain: deployments, their events, guards and rollout policy.

Nothing here imports gRPC or SQL.
"""
