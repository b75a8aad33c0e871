"""Encryption at rest for env values: AES-256-GCM from the ``cryptography`` package.

The key comes from ``RELMAN_SECRET_KEY`` (base64 of 32 bytes) or a key file created on first
start with mode 0600. Each sealed value is ``v1:`` + base64(nonce || ciphertext+tag); the
associated data binds a ciphertext to its row (a value can't be moved to another release).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relman_common.tokens import write_secret_file

KEY_FILE = "secret.key"
_VERSION = "v1:"
_NONCE = 12


class SecretBoxError(Exception):
    pass


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SecretBoxError("the secret key must be 32 bytes (base64 of 32 random bytes)")
        self._aead = AESGCM(key)

    @staticmethod
    def generate_key() -> bytes:
        return AESGCM.generate_key(bit_length=256)

    @classmethod
    def from_env_or_file(cls, data_dir: Path) -> SecretBox:
        """``RELMAN_SECRET_KEY`` if set, else ``data_dir/secret.key`` (made on first use)."""
        encoded = os.environ.get("RELMAN_SECRET_KEY", "")
        if not encoded:
            path = data_dir / KEY_FILE
            if not path.exists():
                write_secret_file(path, base64.b64encode(cls.generate_key()).decode())
            encoded = path.read_text().strip()
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error as err:
            raise SecretBoxError("RELMAN_SECRET_KEY is not valid base64") from err
        return cls(key)

    def seal(self, plaintext: bytes, associated: bytes) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext, associated)
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, associated: bytes) -> bytes:
        if not sealed.startswith(_VERSION):
            raise SecretBoxError("unknown sealed-value format")
        raw = base64.b64decode(sealed[len(_VERSION) :])
        try:
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], associated)
        except Exception as err:
            raise SecretBoxError("cannot decrypt: wrong RELMAN_SECRET_KEY or damaged data") from err


def is_sealed(value: str) -> bool:
    return value.startswith(_VERSION)
