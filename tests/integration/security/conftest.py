"""The security tests' fixtures, from tests/support/security.py: ``secure_server`` (the Release
service with authentication on, on the database of ``db_url``) and ``pki`` (certificates)."""

from support.security import pki, secure_server

__all__ = ["pki", "secure_server"]
