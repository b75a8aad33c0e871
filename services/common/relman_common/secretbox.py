"""Encryption at rest for env values: AES-256-GCM from the ``cryptography`` package.

The key comes from ``RELMAN_SECRET_KEY`` (base64 of 32 bytes) or a key file created on first
start with mode 0600. Each sealed value is ``v1:`` + base64(nonce || ciphertext+tag); the
associated data binds a ciphertext to its row (a value can't be moved to another release).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relman_common.settings import SECRET_KEY
from relman_common.tokens import create_secret_file_once

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
    def from_env_or_file(cls, data_dir: Path, key_file: Path | None = None) -> SecretBox:
        """The key of ``key_file`` when given (it must exist: ``--secret-key-file``); else
        ``RELMAN_SECRET_KEY``; else ``data_dir/secret.key``, created with a new random key
        (mode 0600) on first use."""
        if key_file is not None:
            if not key_file.is_file():
                raise SecretBoxError(f"secret key file not found: {key_file}")
            encoded, source = key_file.read_text().strip(), str(key_file)
        elif from_env := SECRET_KEY.value():
            encoded, source = from_env, SECRET_KEY.env
        else:
            path = data_dir / KEY_FILE
            create_secret_file_once(path, base64.b64encode(cls.generate_key()).decode())
            encoded, source = path.read_text().strip(), str(path)
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error as err:
            raise SecretBoxError(f"{source} does not hold valid base64") from err
        if len(key) != 32:
            raise SecretBoxError(f"{source} must hold base64 of 32 bytes, not {len(key)} bytes")
        return cls(key)

    def seal(self, plaintext: bytes, associated: bytes) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext, associated)
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, associated: bytes) -> bytes:
        if not sealed.startswith(_VERSION):
            raise SecretBoxError("unknown sealed-value format")
        try:
            raw = base64.b64decode(sealed[len(_VERSION) :], validate=True)
        except binascii.Error as err:
            raise SecretBoxError("damaged sealed value (not base64)") from err
        try:
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], associated)
        except Exception as err:
            raise SecretBoxError("cannot decrypt: wrong RELMAN_SECRET_KEY or damaged data") from err


def is_sealed(value: str) -> bool:
    return value.startswith(_VERSION)
