"""``python -m relman_release`` / ``relman-release``: run the Release service until a signal."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from relman_common import config
from relman_common.db import sqlite_url
from relman_common.flags import add_server_tls_flags, add_storage_flags
from relman_common.secretbox import SecretBoxError
from relman_common.server import setup_logging
from relman_common.tls import ServerTls, server_tls

from relman_release.api.server import create_service

log = logging.getLogger("relman.release")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="relman-release", description="The relman Release service (apps, builds, releases)."
    )
    parser.add_argument(
        "--addr",
        default=config.release_addr(),
        help="listen address (env RELMAN_RELEASE_ADDR, default %(default)s)",
    )
    add_storage_flags(parser, "release.db")
    try:
        auth_default = config.auth_enabled()
    except ValueError as err:
        parser.error(str(err))
    parser.add_argument(
        "--auth",
        action=argparse.BooleanOptionalAction,
        default=auth_default,
        help="demand a token (authorization: Bearer rmt_...) on every call but health checks; "
        "the first start creates <data-dir>/admin.token and <data-dir>/deployer.token "
        "(env RELMAN_AUTH=on|off, default %(default)s)",
    )
    add_server_tls_flags(parser)
    parser.add_argument(
        "--secret-key-file",
        type=Path,
        default=Path(config.secret_key_file()) if config.secret_key_file() else None,
        help="file holding the base64 key that encrypts env at rest (env "
        "RELMAN_SECRET_KEY_FILE); without it the key is RELMAN_SECRET_KEY, else "
        "<data-dir>/secret.key, created on first start",
    )
    args = parser.parse_args(argv)
    try:
        args.tls = tls_settings(args)
    except ValueError as err:
        parser.error(str(err))
    return args


def tls_settings(args: argparse.Namespace) -> ServerTls | None:
    tls = server_tls(args.tls_cert, args.tls_key, args.tls_client_ca)
    if tls is not None:
        for path in (tls.cert, tls.key, tls.client_ca):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file not found: {path}")
    return tls


def database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    return sqlite_url((data_dir / "release.db").resolve())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("relman-release")
    url = database_url(args)
    log.info("database %s", url.split("@")[-1] if "@" in url else url)
    try:
        service = create_service(
            args.addr,
            url,
            data_dir=args.data_dir,
            auth=args.auth,
            tls=args.tls,
            secret_key_file=args.secret_key_file,
        )
        asyncio.run(service.run_until_signal())
    except (OSError, SecretBoxError) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
