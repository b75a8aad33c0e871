"""Fixtures of the tests that run a private dockerd and registry (``docker_daemon``,
``registry`` and ``base_image`` come from the tests/support/containers.py plugin)."""

from support.images import make_context

__all__ = ["make_context"]
