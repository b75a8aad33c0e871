"""API tokens: high-entropy random strings, stored only as SHA-256 hashes.

A token is ``rmt_`` + 43 url-safe characters (256 random bits). Because tokens are random
and long, a fast hash is the right tool (as for GitHub's tokens): nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

PREFIX = "rmt_"
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")

ADMIN_TOKEN_FILE = "admin.token"
DEPLOYER_TOKEN_FILE = "deployer.token"


def generate() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


def write_secret_file(path: Path, content: str) -> None:
    """Create ``path`` with mode 0600 (never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content + "\n")


def read_token_file(path: Path) -> str:
    return path.read_text().strip()
