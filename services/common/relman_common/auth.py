"""Who is calling: bearer tokens in call metadata, principals, and a short verification cache.

No gRPC here: the interceptor in :mod:`relman_common.grpc_errors` reads the metadata and calls
an :data:`Authenticator`; clients build their metadata with :func:`call_metadata`.

A client sends ``authorization: Bearer rmt_...``. A principal of kind ``service`` (the
Deployer) may add ``x-relman-on-behalf-of: NAME`` to act for the person it serves; NAME is
then the actor recorded on what the call writes. Without authentication (``--no-auth``) the
actor is read from ``x-relman-actor`` as before.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from relman_common import tokens
from relman_common.errors import Unauthenticated, Unavailable
from relman_common.setting import Setting
from relman_common.settings import DATA_DIR, DEPLOYER_TOKEN, TOKEN

AUTHORIZATION_METADATA = "authorization"
ON_BEHALF_OF_METADATA = "x-relman-on-behalf-of"
ACTOR_METADATA = "x-relman-actor"
BEARER = "bearer "

ADMIN = "admin"
SERVICE = "service"
USER = "user"
KINDS = (ADMIN, SERVICE, USER)

UNAUTHENTICATED_MESSAGE = "missing or invalid token (set RELMAN_TOKEN or use the local admin token)"

# How long a verified token is trusted without asking the store (or the Release service)
# again: the longest a revoked token can still be used on another replica.
VERIFY_CACHE_SECONDS = 2.0
# How long a verified token is still taken while the verifier cannot be reached (the Release
# service restarting): a Deployer keeps answering its callers through the restart.
STALE_IF_UNAVAILABLE_SECONDS = 120.0

MAX_ACTOR_LENGTH = 64
MAX_CACHED = 10_000


@dataclass(frozen=True)
class Principal:
    """The holder of a verified token: its name and kind (admin, service or user)."""

    name: str
    kind: str

    @property
    def is_admin(self) -> bool:
        return self.kind == ADMIN

    @property
    def is_service(self) -> bool:
        return self.kind == SERVICE


# Verifies the bearer token of a call (None when the call carried none) and returns its
# principal, or raises Unauthenticated (or Unavailable when the verifier cannot be reached).
Authenticator = Callable[[str | None], Awaitable[Principal]]

_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "relman_principal", default=None
)


def current_principal() -> Principal | None:
    """The verified caller of the current request; None when authentication is off."""
    return _PRINCIPAL.get()


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _PRINCIPAL.set(principal)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The token of an ``authorization: Bearer ...`` entry, or None.

    >>> bearer_token([("authorization", "Bearer rmt_abc")])
    'rmt_abc'
    >>> bearer_token([("authorization", "Basic xyz")]) is None
    True
    """
    for key, value in metadata:
        if key == AUTHORIZATION_METADATA and isinstance(value, str):
            if value[: len(BEARER)].lower() == BEARER:
                return value[len(BEARER) :].strip() or None
            return None
    return None


def metadata_value(metadata: Iterable[tuple[str, str | bytes]], name: str) -> str:
    """The first text value of ``name`` (clipped to an actor's length), or ``""``."""
    for key, value in metadata:
        if key == name and isinstance(value, str) and value:
            return value[:MAX_ACTOR_LENGTH]
    return ""


def actor_for(principal: Principal, metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The actor a verified call is recorded under: the token's name, or for a service token
    the person named in ``x-relman-on-behalf-of`` (when given).

    >>> actor_for(Principal("deployer", SERVICE), [("x-relman-on-behalf-of", "alice")])
    'alice'
    >>> actor_for(Principal("bob", USER), [("x-relman-on-behalf-of", "alice")])
    'bob'
    """
    if principal.is_service:
        on_behalf_of = metadata_value(metadata, ON_BEHALF_OF_METADATA)
        if on_behalf_of:
            return on_behalf_of
    return principal.name


# --- clients ---------------------------------------------------------------------------------


def call_metadata(token: str | None, actor: str = "") -> list[tuple[str, str]]:
    """The metadata a client sends: its token, and the person it acts for.

    ``actor`` travels both as ``x-relman-actor`` (read when the server runs without
    authentication) and as ``x-relman-on-behalf-of`` (honoured only for service tokens).

    >>> call_metadata("rmt_x", "alice")  # doctest: +NORMALIZE_WHITESPACE
    [('authorization', 'Bearer rmt_x'), ('x-relman-actor', 'alice'),
     ('x-relman-on-behalf-of', 'alice')]
    """
    metadata: list[tuple[str, str]] = []
    if token:
        metadata.append((AUTHORIZATION_METADATA, "Bearer " + token))
    if actor:
        metadata.append((ACTOR_METADATA, actor[:MAX_ACTOR_LENGTH]))
        metadata.append((ON_BEHALF_OF_METADATA, actor[:MAX_ACTOR_LENGTH]))
    return metadata


def _token_from(setting: Setting[str], path: Path) -> str | None:
    value = setting.value()
    if value:
        return value
    if path.exists():
        return tokens.read_token_file(path) or None
    return None


def user_token(data_dir: Path | None = None) -> str | None:
    """The CLI's token: ``RELMAN_TOKEN``, else the local admin token
    ``<data-dir>/admin.token`` when this machine runs the Release service, else None."""
    directory = data_dir if data_dir is not None else DATA_DIR.value()
    return _token_from(TOKEN, directory / tokens.ADMIN_TOKEN_FILE)


def deployer_token(data_dir: Path | None = None) -> str | None:
    """The Deployer's own token: ``RELMAN_DEPLOYER_TOKEN``, else ``<data-dir>/deployer.token``."""
    directory = data_dir if data_dir is not None else DATA_DIR.value()
    return _token_from(DEPLOYER_TOKEN, directory / tokens.DEPLOYER_TOKEN_FILE)


# --- servers ---------------------------------------------------------------------------------


def require_token(token: str | None) -> str:
    """``token`` when it has the shape of a relman token, else Unauthenticated (no lookup)."""
    if not token or not token.startswith(tokens.PREFIX) or len(token) > 200:
        raise Unauthenticated(UNAUTHENTICATED_MESSAGE)
    return token


class CachedAuthenticator:
    """Remembers successful verifications for ``ttl`` seconds, keyed by the token's hash.

    Failures are not remembered, so a token works as soon as it is created. :meth:`forget`
    drops a principal at once (call it when revoking on this replica); other replicas stop
    accepting a revoked token within ``ttl``. While the verifier cannot be reached
    (Unavailable), a token verified in the last ``stale`` seconds is still taken, so that a
    restart of the Release service does not refuse every call to a Deployer.
    """

    def __init__(
        self,
        verify: Authenticator,
        ttl: float = VERIFY_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        stale: float = STALE_IF_UNAVAILABLE_SECONDS,
    ) -> None:
        self._verify = verify
        self._ttl = ttl
        self._stale = stale
        self._clock = clock
        # token hash -> (principal, verified at)
        self._cache: dict[str, tuple[Principal, float]] = {}
        # Bumped by forget(): a verification that began before it must not be cached after it.
        self._generation = 0

    async def __call__(self, token: str | None) -> Principal:
        key = tokens.hash_token(require_token(token))
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[1] < self._ttl:
            return hit[0]
        generation = self._generation
        try:
            principal = await self._verify(token)
        except Unavailable:
            hit = self._cache.get(key)  # forget() may have dropped it meanwhile
            if hit is not None and self._clock() - hit[1] < self._stale:
                return hit[0]
            raise
        if generation == self._generation:
            if len(self._cache) >= MAX_CACHED:
                keep = max(self._ttl, self._stale)
                self._cache = {k: v for k, v in self._cache.items() if now - v[1] < keep}
            self._cache[key] = (principal, self._clock())
        return principal

    def forget(self, name: str) -> None:
        """Stop trusting every cached token of principal ``name``."""
        self._generation += 1
        self._cache = {k: v for k, v in self._cache.items() if v[0].name != name}

    def clear(self) -> None:
        self._generation += 1
        self._cache.clear()
