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
from relman_common.server import setup_logging

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
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=config.data_dir(),
        help="state directory; the SQLite file release.db lives here "
        "(env RELMAN_DATA_DIR, default %(default)s)",
    )
    parser.add_argument(
        "--database-url",
        default=config.database_url(),
        help="database URL, e.g. postgresql://user@host/db; overrides SQLite "
        "(env RELMAN_DATABASE_URL)",
    )
    return parser.parse_args(argv)


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
        service = create_service(args.addr, url)
        asyncio.run(service.run_until_signal())
    except OSError as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
