"""``python -m relman_release`` / ``relman-release``: run the Release service until a signal."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from relman_common.db import sqlite_url
from relman_common.errors import RelmanError
from relman_common.secretbox import SecretBoxError
from relman_common.server import keep_large_buffers_mapped, run_service, setup_logging
from relman_common.setting import add_flags, check_rules
from relman_common.settings import BUILDER, REGISTRY_PASSWORD, RELEASE, SETTINGS
from relman_common.tls import ServerTls, server_tls

from relman_release.api.server import create_service
from relman_release.builds.workshop import BuildConfig
from relman_release.images import BUILDERS

log = logging.getLogger("relman.release")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="relman-release", description="The relman Release service (apps, builds, releases)."
    )
    add_flags(parser, RELEASE, SETTINGS, choices={BUILDER.name: BUILDERS})
    args = parser.parse_args(argv)
    check_rules(parser, args, RELEASE, SETTINGS)
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
    keep_large_buffers_mapped()  # uploads and builds stream large chunks through threads
    url = database_url(args)
    log.info("database %s", url.split("@")[-1] if "@" in url else url)
    return run_service(
        lambda: create_service(
            args.addr,
            url,
            data_dir=args.data_dir,
            auth=args.auth,
            tls=args.tls,
            secret_key_file=args.secret_key_file,
            builds=BuildConfig.from_args(args, REGISTRY_PASSWORD.value()),
            keep_releases=args.keep_releases,
            webhook_timeout=args.webhook_timeout,
            bootstrap_tokens_dir=args.bootstrap_tokens_dir,
            webhook_history_days=args.webhook_history_days,
        ),
        log,
        (OSError, SecretBoxError, RelmanError, ValueError),
    )


if __name__ == "__main__":
    sys.exit(main())
