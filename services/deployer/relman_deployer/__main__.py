"""``python -m relman_deployer`` / ``relman-deployer``: run the Deployer until a signal.

On SIGTERM/SIGINT it stops taking calls (open streams get a short grace), stops its deployment
tasks without ending them and hands their leases off, so another Deployer — or this one,
restarted — resumes them at once. Nothing is rolled back just because the process stops.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from relman_common import tokens
from relman_common.db import sqlite_url
from relman_common.errors import RelmanError
from relman_common.server import run_service, setup_logging
from relman_common.setting import add_flags, check_rules
from relman_common.settings import BACKEND, DEPLOYER, DEPLOYER_TOKEN, SETTINGS
from relman_common.tls import client_tls, server_tls

from relman_deployer.api.server import DeployerService, Settings
from relman_deployer.backends import BACKENDS

log = logging.getLogger("relman.deployer")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="relman-deployer",
        description="The relman Deployer: promotions as streamed rolling deployments.",
    )
    add_flags(parser, DEPLOYER, SETTINGS, choices={BACKEND.name: BACKENDS})
    args = parser.parse_args(argv)
    try:
        args.tls = server_tls(args.tls_cert, args.tls_key, args.tls_client_ca)
        if args.tls is not None:
            for path in (args.tls.cert, args.tls.key, args.tls.client_ca):
                if path is not None and not path.is_file():
                    raise ValueError(f"TLS file not found: {path}")
        args.release_tls = client_tls(
            args.release_tls_ca, args.release_tls_client_cert, args.release_tls_client_key
        )
    except ValueError as err:
        parser.error(str(err))
    check_rules(parser, args, DEPLOYER, SETTINGS)
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    url = str(args.database_url)
    if not url:
        data_dir: Path = args.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        url = sqlite_url((data_dir / "deployer.db").resolve())
    options: dict[str, object]
    if args.backend == "sim":
        options = {"pod_delay": args.sim_pod_delay, "namespace_prefix": args.namespace_prefix}
    else:
        options = {
            "kubeconfig": args.kubeconfig or None,
            "context": args.kube_context or None,
            "namespace_prefix": args.namespace_prefix,
        }
    return Settings(
        database_url=url,
        release_addr=args.release_addr,
        backend=args.backend,
        backend_options=options,
        lease_ttl=args.lease_ttl,
        retry_seconds=args.retry_seconds,
        crashloop_threshold=args.crashloop_threshold,
        scheduling_grace=args.scheduling_grace,
        default_timeout=args.default_timeout,
        auth=args.auth,
        token_file=args.token_file or args.data_dir / tokens.DEPLOYER_TOKEN_FILE,
        token=DEPLOYER_TOKEN.value(),
        tls=args.tls,
        release_tls=args.release_tls,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("relman-deployer")
    settings = settings_from(args)
    url = settings.database_url
    log.info(
        "database %s, backend %s, release service %s%s, instance %s",
        url.split("@")[-1] if "@" in url else url,
        settings.backend,
        settings.release_addr,
        " (TLS)" if settings.release_tls else "",
        settings.owner,
    )
    if settings.auth and not settings.token:
        log.info("service token from %s", settings.token_file)
    return run_service(lambda: DeployerService(args.addr, settings), log, (OSError, RelmanError))


if __name__ == "__main__":
    sys.exit(main())
