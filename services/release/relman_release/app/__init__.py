"""Use-cases: one function per RPC verb, plain values in, domain objects out, one unit of work
per call. No SQL, no gRPC."""
