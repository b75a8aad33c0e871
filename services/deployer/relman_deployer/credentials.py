"""The Deployer's own token, read lazily from its file.

``make run`` starts the Release service and the Deployer at the same moment; the Release
service writes ``<data-dir>/deployer.token`` on its first start, maybe after the Deployer is
up. So the token is read when first needed, waiting (with backoff, for a bounded time) for the
file to appear, and read again after the Release service refused it (a new database makes new
tokens).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from relman_common import tokens
from relman_common.errors import Unavailable

log = logging.getLogger("relman.deployer.credentials")

# How long a call waits for the token file before failing with Unavailable (it is retried).
TOKEN_WAIT_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 1.0


class DeployerToken:
    """The service token the Deployer sends to the Release service.

    ``value`` (``RELMAN_DEPLOYER_TOKEN``) is used as given; otherwise ``path`` is read on
    first use. ``required``: wait up to ``wait`` seconds for the file, then raise Unavailable;
    when not required a missing file means no token (a Release service without
    authentication needs none).
    """

    def __init__(
        self,
        path: Path | None,
        value: str = "",
        *,
        required: bool = True,
        wait: float = TOKEN_WAIT_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.path = path
        self._fixed = value.strip()
        self._cached = self._fixed or None
        self._required = required
        self._wait = wait
        self._sleep = sleep
        self._lock = asyncio.Lock()

    async def get(self) -> str | None:
        """The token, or None when none is required and there is none."""
        if self._cached is not None:
            return self._cached
        async with self._lock:
            if self._cached is None:
                self._cached = await self._read()
            return self._cached

    def forget(self) -> None:
        """Read the file again on next use (the Release service refused the token)."""
        if not self._fixed:
            self._cached = None

    async def _read(self) -> str | None:
        if self.path is None:
            if self._required:
                raise Unavailable("the Deployer has no service token (set RELMAN_DEPLOYER_TOKEN)")
            return None
        deadline = time.monotonic() + self._wait
        delay = 0.05
        while True:
            token = await asyncio.to_thread(_read_file, self.path)
            if token or not self._required:
                return token
            if time.monotonic() + delay > deadline:
                raise Unavailable(
                    f"the Deployer's service token file {self.path} does not exist yet "
                    "(the Release service creates it on its first start with authentication)"
                )
            log.info("waiting for the service token file %s", self.path)
            await self._sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)


def _read_file(path: Path) -> str | None:
    try:
        return tokens.read_token_file(path) or None
    except FileNotFoundError:
        return None
