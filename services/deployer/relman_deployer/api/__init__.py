"""The Deployer's gRPC edge: the servicer translates, the server wires."""
