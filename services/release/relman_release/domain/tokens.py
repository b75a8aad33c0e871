"""API tokens as plain values, and the rules about who may manage them. No storage, no gRPC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from relman_common.auth import ADMIN, KINDS, SERVICE, USER, Principal
from relman_common.errors import INVALID_NAME, FailedPrecondition, InvalidArgument, PermissionDenied
from relman_common.tokens import NAME_RE
from relman_common.vocabulary import quote

BOOTSTRAP_ACTOR = "bootstrap"
# The tokens made on first start: one for the person running relman, one for the Deployer.
BOOTSTRAP_ADMIN = "admin"
BOOTSTRAP_DEPLOYER = "deployer"


@dataclass(frozen=True)
class ApiToken:
    """A token as stored, minus its hash. ``revoked`` is None while it is live."""

    name: str
    kind: str
    created: datetime
    actor: str
    revoked: datetime | None = None

    @property
    def live(self) -> bool:
        return self.revoked is None

    def principal(self) -> Principal:
        return Principal(name=self.name, kind=self.kind)


def validate_token_name(name: str, field: str = "name") -> str:
    """``name`` if it is a valid token name, else InvalidArgument (reason INVALID_NAME, about
    ``field``); the message quotes at most ~100 characters of it, a NUL byte as ``\\0``.

    >>> validate_token_name("ci-bot")
    'ci-bot'
    >>> validate_token_name("CI")
    Traceback (most recent call last):
    ...
    relman_common.errors.InvalidArgument: invalid token name "CI": use 1 to 63 lowercase letters, digits and "-", starting with a letter
    """  # noqa: E501
    if not name:
        raise InvalidArgument("token name is required", reason=INVALID_NAME, field=field)
    if NAME_RE.fullmatch(name) is None:
        raise InvalidArgument(
            f'invalid token name {quote(name)}: use 1 to 63 lowercase letters, digits and "-", '
            "starting with a letter",
            reason=INVALID_NAME,
            field=field,
        )
    return name


def token_kind(kind: str) -> str:
    """The kind of a new token: ``user`` unless another valid kind is asked for.

    >>> token_kind(""), token_kind("service")
    ('user', 'service')
    """
    if not kind:
        return USER
    if kind not in KINDS:
        raise InvalidArgument(f'invalid token kind "{kind[:40]}": use one of {", ".join(KINDS)}')
    return kind


def require_principal(principal: Principal | None, doing: str) -> Principal:
    """The verified caller; FailedPrecondition when the service runs without authentication
    (tokens made while anyone may call would outlive that period)."""
    if principal is None:
        raise FailedPrecondition(
            f"can not {doing}: authentication is off on this Release service "
            "(start it with --auth or RELMAN_AUTH=on)"
        )
    return principal


def require_admin(principal: Principal | None, doing: str) -> Principal:
    """The caller, if it may manage tokens (``doing`` names the action for the message)."""
    principal = require_principal(principal, doing)
    if not principal.is_admin:
        raise PermissionDenied(
            f"only admin tokens may {doing} (this call used {principal.kind} token "
            f"{principal.name})"
        )
    return principal


def require_service(principal: Principal | None, doing: str) -> None:
    """Only a Deployer (a service token) may do what only a Deployer knows to be true, such
    as reporting a deployment's outcome; anyone may when authentication is off."""
    if principal is not None and not principal.is_service:
        raise PermissionDenied(
            f"only service tokens (a Deployer's) may {doing} (this call used {principal.kind} "
            f"token {principal.name})"
        )


def check_revocable(token: ApiToken, live_admins: list[str]) -> None:
    """Refuses to revoke the last live admin token: nobody could manage tokens afterwards."""
    if token.kind == ADMIN and token.live and live_admins == [token.name]:
        raise FailedPrecondition(
            f"can not revoke {token.name}: it is the last admin token "
            "(create another admin token first)"
        )


__all__ = [
    "ADMIN",
    "BOOTSTRAP_ACTOR",
    "BOOTSTRAP_ADMIN",
    "BOOTSTRAP_DEPLOYER",
    "SERVICE",
    "USER",
    "ApiToken",
    "check_revocable",
    "require_admin",
    "require_principal",
    "token_kind",
    "validate_token_name",
]
