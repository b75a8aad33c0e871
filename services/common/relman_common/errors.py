"""The project's error types. Domain code raises these; one table maps them to gRPC codes.

Nothing here imports gRPC, SQL or HTTP, so domain modules can raise them freely.

Every error carries, besides its message for people, a stable ``reason`` for programs (sent
as a google.rpc.ErrorInfo) and, for invalid input, the ``field`` it is about (sent as a
google.rpc.BadRequest field violation):

>>> err = NotFound("app not found: web", reason=APP_NOT_FOUND)
>>> str(err), err.reason
('app not found: web', 'APP_NOT_FOUND')
>>> InvalidArgument("bad", field="app").reason
'INVALID_ARGUMENT'
"""

from __future__ import annotations

from typing import Any

# Stable reasons (ErrorInfo.reason). Without one, an error has its class's: the gRPC code's name.
APP_NOT_FOUND = "APP_NOT_FOUND"
BUILD_NOT_FOUND = "BUILD_NOT_FOUND"
RELEASE_NOT_FOUND = "RELEASE_NOT_FOUND"
DEPLOYMENT_NOT_FOUND = "DEPLOYMENT_NOT_FOUND"
TOKEN_NOT_FOUND = "TOKEN_NOT_FOUND"
ENV_NOT_FOUND = "ENV_NOT_FOUND"
APP_EXISTS = "APP_EXISTS"
TOKEN_EXISTS = "TOKEN_EXISTS"
INVALID_ID = "INVALID_ID"
INVALID_NAME = "INVALID_NAME"
INVALID_MANIFEST = "INVALID_MANIFEST"
TOO_LARGE = "TOO_LARGE"
APP_BUSY = "APP_BUSY"
OLDER_RELEASE = "OLDER_RELEASE"
EMPTY_MANIFEST = "EMPTY_MANIFEST"
NO_ACTIVE_RELEASE = "NO_ACTIVE_RELEASE"
NO_BUILD = "NO_BUILD"
ENV_REQUIRED = "ENV_REQUIRED"
NOT_RUNNING = "NOT_RUNNING"
APP_LOCKED = "APP_LOCKED"
NOT_LOCKED = "NOT_LOCKED"
PRUNED = "PRUNED"
WEBHOOK_NOT_FOUND = "WEBHOOK_NOT_FOUND"


class RelmanError(Exception):
    """Base of every error a person should read. ``str(err)`` is the message."""

    default_reason = "UNKNOWN"

    def __init_subclass__(cls, *, reason: str = "", **kwargs: Any) -> None:
        """``class NotFound(RelmanError, reason="NOT_FOUND")``: the subclass's default reason."""
        super().__init_subclass__(**kwargs)
        if reason:
            cls.default_reason = reason

    def __init__(self, message: str = "", *, reason: str = "", field: str = "") -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason
        # The request field the error is about (BadRequest), "" when none.
        self.field = field


class InvalidArgument(RelmanError, reason="INVALID_ARGUMENT"):
    """The request itself is malformed: a bad name, key, manifest or flag combination."""


class NotFound(RelmanError, reason="NOT_FOUND"):
    """The app, build, release or deployment named does not exist (in that app)."""


class AlreadyExists(RelmanError, reason="ALREADY_EXISTS"):
    """The thing to create exists already."""


class FailedPrecondition(RelmanError, reason="FAILED_PRECONDITION"):
    """The request is well-formed but the system is not in a state that allows it."""


class Unauthenticated(RelmanError, reason="UNAUTHENTICATED"):
    """No credentials, or credentials that are not valid."""


class PermissionDenied(RelmanError, reason="PERMISSION_DENIED"):
    """The caller is known but may not do this (e.g. only admin tokens manage tokens)."""


class ResourceExhausted(RelmanError, reason="RESOURCE_EXHAUSTED"):
    """Something is larger than a limit allows; the message names the limit."""


class Unavailable(RelmanError, reason="UNAVAILABLE"):
    """A service this one depends on cannot be reached; retrying later may succeed."""
