"""The images package's fixtures, from tests/support/images.py."""

from support.images import layout, local_builder, make_context

__all__ = ["layout", "local_builder", "make_context"]
