"""The Release service's rules, with no gRPC and no SQL."""
