"""Use-cases of API tokens: bootstrap, create, list, revoke, verify. No SQL, no gRPC.

Secrets exist only in memory on their way to the one place they are shown (the response of
CreateToken, or the token files written on first start); the store holds SHA-256 hashes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from relman_common import tokens
from relman_common.auth import UNAUTHENTICATED_MESSAGE, Principal
from relman_common.errors import AlreadyExists, NotFound, Unauthenticated

from relman_release.domain.tokens import (
    ADMIN,
    BOOTSTRAP_ACTOR,
    BOOTSTRAP_ADMIN,
    BOOTSTRAP_DEPLOYER,
    SERVICE,
    ApiToken,
    check_revocable,
    require_admin,
    require_principal,
    token_kind,
    validate_token_name,
)
from relman_release.ports import UnitOfWork


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    secret: str


@dataclass(frozen=True)
class BootstrapSecrets:
    admin: str
    deployer: str


def bootstrap_tokens(
    uow: UnitOfWork,
    save: Callable[[BootstrapSecrets], None],
    given: BootstrapSecrets | None = None,
) -> BootstrapSecrets | None:
    """On the first start (no token stored yet) creates the ``admin`` token and the
    ``deployer`` service token, with the ``given`` secrets or new random ones, and hands
    their secrets to ``save`` *before* committing, so that a failure to save them leaves no
    token behind. Returns None when tokens exist (also when another replica bootstrapped at
    the same moment)."""
    if given is not None and given.admin == given.deployer:
        raise ValueError("the admin and deployer tokens must differ")
    secrets = given or BootstrapSecrets(admin=tokens.generate(), deployer=tokens.generate())
    try:
        with uow.write() as repo:
            if repo.count_tokens() > 0:
                return None
            now = uow.now()
            repo.add_token(
                ApiToken(BOOTSTRAP_ADMIN, ADMIN, now, BOOTSTRAP_ACTOR),
                tokens.hash_token(secrets.admin),
            )
            repo.add_token(
                ApiToken(BOOTSTRAP_DEPLOYER, SERVICE, now, BOOTSTRAP_ACTOR),
                tokens.hash_token(secrets.deployer),
            )
            save(secrets)
    except AlreadyExists:
        return None
    return secrets


def verify_token(uow: UnitOfWork, token_hash: str) -> Principal:
    """The principal of a live token with this hash, else Unauthenticated."""
    with uow.read() as repo:
        token = repo.find_token_by_hash(token_hash)
    if token is None or not token.live:
        raise Unauthenticated(UNAUTHENTICATED_MESSAGE)
    return token.principal()


def create_token(
    uow: UnitOfWork, principal: Principal | None, name: str, kind: str = ""
) -> CreatedToken:
    """A new token; its secret is returned once and never stored."""
    creator = require_admin(principal, "create tokens")
    validate_token_name(name)
    kind = token_kind(kind)
    secret = tokens.generate()
    with uow.write() as repo:
        if repo.get_token(name) is not None:
            raise AlreadyExists(f"token already exists: {name}")
        token = ApiToken(name=name, kind=kind, created=uow.now(), actor=creator.name)
        repo.add_token(token, tokens.hash_token(secret))
    return CreatedToken(token=token, secret=secret)


def list_tokens(uow: UnitOfWork, principal: Principal | None) -> list[ApiToken]:
    require_admin(principal, "list tokens")
    with uow.read() as repo:
        return repo.list_tokens()


def revoke_token(uow: UnitOfWork, principal: Principal | None, name: str) -> ApiToken:
    """Revokes ``name`` (a revoked token stays revoked, with its first revocation time)."""
    require_admin(principal, "revoke tokens")
    validate_token_name(name)
    with uow.write() as repo:
        token = repo.get_token(name)
        if token is None:
            raise NotFound(f"token not found: {name}")
        if not token.live:
            return token
        live_admins = repo.lock_live_admins() if token.kind == ADMIN else []
        check_revocable(token, live_admins)
        now = uow.now()
        repo.revoke_token(name, now)
        return replace(token, revoked=now)


def who_am_i(uow: UnitOfWork, principal: Principal | None) -> ApiToken:
    """The stored token of the caller."""
    caller = require_principal(principal, "tell who is calling")
    with uow.read() as repo:
        token = repo.get_token(caller.name)
    if token is None or not token.live:
        raise Unauthenticated(UNAUTHENTICATED_MESSAGE)
    return token
