"""The project's error types. Domain code raises these; one table maps them to gRPC codes.

Nothing here imports gRPC, SQL or HTTP, so domain modules can raise them freely.
"""

from __future__ import annotations


class RelmanError(Exception):
    """Base of every error a person should read. ``str(err)`` is the message."""


class InvalidArgument(RelmanError):
    """The request itself is malformed: a bad name, key, manifest or flag combination."""


class NotFound(RelmanError):
    """The app, build, release or deployment named does not exist (in that app)."""


class AlreadyExists(RelmanError):
    """The thing to create exists already."""


class FailedPrecondition(RelmanError):
    """The request is well-formed but the system is not in a state that allows it."""


class Unauthenticated(RelmanError):
    """No credentials, or credentials that are not valid."""


class PermissionDenied(RelmanError):
    """The caller is known but may not do this (e.g. only admin tokens manage tokens)."""


class Unavailable(RelmanError):
    """A service this one depends on cannot be reached; retrying later may succeed."""
