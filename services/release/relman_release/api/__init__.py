"""The gRPC edge: converters, the servicer and the server wiring."""
