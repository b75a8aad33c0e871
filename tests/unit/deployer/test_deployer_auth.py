"""Authentication on the Deployer: its own service token is read lazily from its file, so it may
start before the Release service made it. (That every RPC needs a user's token, verified by the
Release service, is in tests/integration/deployer/test_deployer_auth.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from relman_common import tokens
from relman_common.errors import Unavailable
from relman_deployer.credentials import DeployerToken


async def test_a_token_file_that_appears_while_waiting_is_read(tmp_path: Path) -> None:
    path = tmp_path / "deployer.token"
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            tokens.write_secret_file(path, "rmt_late")

    token = DeployerToken(path, sleep=sleep)
    assert await token.get() == "rmt_late"
    assert waits == [0.05, 0.1, 0.2]  # backing off
    path.unlink()
    assert await token.get() == "rmt_late"  # remembered, not read again
    token.forget()
    tokens.write_secret_file(path, "rmt_new")
    assert await token.get() == "rmt_new"


async def test_a_token_file_that_never_appears_fails_as_unavailable_after_a_bounded_wait(
    tmp_path: Path,
) -> None:
    async def no_wait(_seconds: float) -> None:
        return None

    token = DeployerToken(tmp_path / "missing.token", wait=0.05, sleep=no_wait)
    with pytest.raises(Unavailable, match="does not exist yet"):
        await token.get()
    assert await DeployerToken(tmp_path / "missing.token", required=False).get() is None
    assert await DeployerToken(None, "rmt_given").get() == "rmt_given"
