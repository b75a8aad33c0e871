"""Command-line flags that both services take, each defaulting from its environment variable."""

from __future__ import annotations

import argparse
from pathlib import Path

from relman_common import config


def add_storage_flags(parser: argparse.ArgumentParser, sqlite_file: str) -> None:
    """``--data-dir`` (holding ``sqlite_file``) and ``--database-url``."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=config.data_dir(),
        help=f"state directory; the SQLite file {sqlite_file} lives here "
        "(env RELMAN_DATA_DIR, default %(default)s)",
    )
    parser.add_argument(
        "--database-url",
        default=config.database_url(),
        help="database URL, e.g. postgresql://user@host/db; overrides SQLite "
        "(env RELMAN_DATABASE_URL)",
    )


def add_server_tls_flags(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert``, ``--tls-key`` and ``--tls-client-ca`` (see relman_common.tls.server_tls)."""
    parser.add_argument(
        "--tls-cert",
        default=config.tls_cert(),
        help="serve TLS with this PEM certificate (env RELMAN_TLS_CERT; needs --tls-key)",
    )
    parser.add_argument(
        "--tls-key",
        default=config.tls_key(),
        help="PEM private key of --tls-cert (env RELMAN_TLS_KEY)",
    )
    parser.add_argument(
        "--tls-client-ca",
        default=config.tls_client_ca(),
        help="require client certificates signed by this PEM CA: mutual TLS "
        "(env RELMAN_TLS_CLIENT_CA)",
    )
