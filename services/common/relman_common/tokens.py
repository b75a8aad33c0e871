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


TOKEN_RE = re.compile(r"^rmt_[A-Za-z0-9_-]{43}$")


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


def replace_secret_file(path: Path, content: str) -> None:
    """Write ``path`` with mode 0600, replacing any previous file atomically (readers see the
    old content or the new one, never a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    write_secret_file(tmp, content)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_secret_file_once(path: Path, content: str) -> bool:
    """Create ``path`` (mode 0600) holding ``content`` unless it exists; True if this call
    created it. Safe when several processes race: the file appears complete or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    write_secret_file(tmp, content)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def read_token_file(path: Path) -> str:
    return path.read_text().strip()


def read_given_token(path: Path) -> str:
    """A token someone made for relman (``rmt_`` + 43 of A-Z a-z 0-9 _ -), read from
    ``path``; ValueError naming the file when it is missing or holds anything else."""
    try:
        token = read_token_file(path)
    except OSError as err:
        raise ValueError(f"cannot read a token from {path}: {err.strerror}") from None
    if not TOKEN_RE.fullmatch(token):
        raise ValueError(
            f"{path} does not hold a token: expected rmt_ and 43 characters of A-Z a-z 0-9 _ - "
            "(e.g. rmt_$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '='))"
        )
    return token
