"""Configuration: each setting is a command-line flag whose default comes from the environment."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_RELEASE_ADDR = "127.0.0.1:50051"
DEFAULT_DEPLOYER_ADDR = "127.0.0.1:50052"
DEFAULT_DATA_DIR = ".relman"


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
