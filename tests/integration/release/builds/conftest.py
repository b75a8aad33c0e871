"""The build tests' fixtures, from tests/support/builds.py (the builds against a real registry
in tests/e2e/containers use the same helpers)."""

from support.builds import build_limits, build_server, silent_registry

__all__ = ["build_limits", "build_server", "silent_registry"]
