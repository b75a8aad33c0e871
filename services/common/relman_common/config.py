"""Configuration: each setting is a command-line flag whose default comes from the environment."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_RELEASE_ADDR = "127.0.0.1:50051"
DEFAULT_DEPLOYER_ADDR = "127.0.0.1:50052"
DEFAULT_DATA_DIR = ".relman"
# Services demand a token unless started with --no-auth (RELMAN_AUTH=off).
DEFAULT_AUTH = True


def env(name: str, default: str = "") -> str:
    value = os.environ.get(name, "")
    return value if value else default


def release_addr() -> str:
    return env("RELMAN_RELEASE_ADDR", DEFAULT_RELEASE_ADDR)


def deployer_addr() -> str:
    return env("RELMAN_DEPLOYER_ADDR", DEFAULT_DEPLOYER_ADDR)


def data_dir() -> Path:
    return Path(env("RELMAN_DATA_DIR", DEFAULT_DATA_DIR))


def database_url() -> str:
    return env("RELMAN_DATABASE_URL")


def on_off(name: str, default: bool) -> bool:
    """A switch read from the environment: ``on``/``off`` (also true/false, yes/no, 1/0);
    ``default`` when unset or empty, ValueError for anything else."""
    value = env(name).strip().lower()
    if not value:
        return default
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise ValueError(f"{name} must be on or off, not {value!r}")


def auth_enabled() -> bool:
    """``RELMAN_AUTH``: whether services demand a token on every call (default on)."""
    return on_off("RELMAN_AUTH", DEFAULT_AUTH)


def tls_cert() -> str:
    return env("RELMAN_TLS_CERT")


def tls_key() -> str:
    return env("RELMAN_TLS_KEY")


def tls_client_ca() -> str:
    return env("RELMAN_TLS_CLIENT_CA")


def secret_key_file() -> str:
    return env("RELMAN_SECRET_KEY_FILE")


def deployer_token_file() -> str:
    """``RELMAN_DEPLOYER_TOKEN_FILE``: where the Deployer reads its service token."""
    return env("RELMAN_DEPLOYER_TOKEN_FILE")


def tls_ca() -> str:
    """``RELMAN_TLS_CA``: the CA a client trusts for a TLS service."""
    return env("RELMAN_TLS_CA")


def tls_client_cert() -> str:
    return env("RELMAN_TLS_CLIENT_CERT")


def tls_client_key() -> str:
    return env("RELMAN_TLS_CLIENT_KEY")
