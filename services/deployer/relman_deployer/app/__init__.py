"""Running deployments: the state of one run, following a rollout, the lifecycle driver,
reports to the Release service, and leases (renewal and takeover)."""
