"""The WhoAmI verifier other services use to check a user's token (what the Deployer does),
against the real Release service on SQLite and PostgreSQL. (The shared interceptor and the
verification cache are in tests/unit/security/test_interceptor.py.)"""

from __future__ import annotations

import grpc
import pytest
from relman.v1 import auth_pb2
from relman_common.auth import UNAUTHENTICATED_MESSAGE, Principal
from relman_common.errors import Unauthenticated, Unavailable
from relman_common.token_client import WhoAmIAuthenticator, remote_authenticator
from support.helpers import free_port
from support.security import SecureServer, metadata

GOOD = "rmt_" + "g" * 43


async def test_whoami_verifier_returns_the_principal_of_a_live_token(
    secure_server: SecureServer,
) -> None:
    s = secure_server
    alice = await s.new_token("alice")
    verify = remote_authenticator(s.channel)
    assert await verify(alice) == Principal("alice", "user")
    assert await verify(s.deployer) == Principal("deployer", "service")
    await s.tokens.RevokeToken(
        auth_pb2.RevokeTokenRequest(name="alice"), metadata=metadata(s.admin)
    )
    uncached = WhoAmIAuthenticator(s.channel)
    with pytest.raises(Unauthenticated) as err:
        await uncached(alice)
    assert str(err.value) == UNAUTHENTICATED_MESSAGE
    with pytest.raises(Unauthenticated):
        await uncached("rmt_" + "x" * 43)


async def test_whoami_verifier_says_unavailable_when_the_release_service_is_down() -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
        with pytest.raises(Unavailable):
            await WhoAmIAuthenticator(channel, timeout=2.0)(GOOD)
