"""The security tests' fixtures, from tests/support/security.py: ``pki`` (certificates made on
the spot)."""

from support.security import pki

__all__ = ["pki"]
