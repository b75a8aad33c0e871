"""``python -m relman_deployer`` / ``relman-deployer``: run the Deployer until a signal.

On SIGTERM/SIGINT it stops taking calls (open streams get a short grace), stops its deployment
tasks without ending them and hands their leases off, so another Deployer — or this one,
restarted — resumes them at once. Nothing is rolled back just because the process stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from relman_common import config, tokens
from relman_common.db import sqlite_url
from relman_common.errors import RelmanError
from relman_common.flags import add_server_tls_flags, add_storage_flags
from relman_common.server import setup_logging
from relman_common.tls import client_tls, server_tls

from relman_deployer.api.server import DeployerService, Settings
from relman_deployer.backends import BACKENDS

log = logging.getLogger("relman.deployer")


def _float_env(name: str, default: float) -> float:
    return float(config.env(name, str(default)))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="relman-deployer",
        description="The relman Deployer: promotions as streamed rolling deployments.",
    )
    parser.add_argument(
        "--addr",
        default=config.deployer_addr(),
        help="listen address (env RELMAN_DEPLOYER_ADDR, default %(default)s)",
    )
    parser.add_argument(
        "--release-addr",
        default=config.release_addr(),
        help="the Release service (env RELMAN_RELEASE_ADDR, default %(default)s)",
    )
    add_storage_flags(parser, "deployer.db")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=config.env("RELMAN_BACKEND", "sim"),
        help="where apps run (env RELMAN_BACKEND, default %(default)s)",
    )
    parser.add_argument(
        "--sim-pod-delay",
        type=float,
        default=_float_env("RELMAN_SIM_POD_DELAY", 1.0),
        help="sim backend: seconds from pod creation to ready "
        "(env RELMAN_SIM_POD_DELAY, default %(default)s)",
    )
    parser.add_argument(
        "--kubeconfig",
        default=config.env("RELMAN_KUBECONFIG"),
        help="kubernetes backend: kubeconfig file (env RELMAN_KUBECONFIG; default "
        "$KUBECONFIG, then in-cluster config, then ~/.kube/config)",
    )
    parser.add_argument(
        "--kube-context",
        default=config.env("RELMAN_KUBE_CONTEXT"),
        help="kubernetes backend: kubeconfig context (env RELMAN_KUBE_CONTEXT)",
    )
    parser.add_argument(
        "--namespace-prefix",
        default=config.env("RELMAN_NAMESPACE_PREFIX", "relman"),
        help="namespaces are <prefix>-<app> (env RELMAN_NAMESPACE_PREFIX, default %(default)s)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=15.0,
        help="seconds a deployment's lease lives without renewal (default %(default)s)",
    )
    parser.add_argument(
        "--crashloop-threshold",
        type=int,
        default=3,
        help="container restarts that count as a crash loop (default %(default)s)",
    )
    parser.add_argument(
        "--default-timeout",
        type=int,
        default=600,
        help="progress deadline in seconds when a request gives none (default %(default)s)",
    )
    try:
        auth_default = config.auth_enabled()
    except ValueError as err:
        parser.error(str(err))
    parser.add_argument(
        "--auth",
        action=argparse.BooleanOptionalAction,
        default=auth_default,
        help="demand a user's token (authorization: Bearer rmt_...) on every call but health "
        "checks, verified by the Release service (env RELMAN_AUTH=on|off, default %(default)s)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=Path(config.deployer_token_file()) if config.deployer_token_file() else None,
        help="the Deployer's service token for the Release service, read when first needed "
        "(env RELMAN_DEPLOYER_TOKEN_FILE, default <data-dir>/deployer.token); "
        "RELMAN_DEPLOYER_TOKEN gives the token itself",
    )
    add_server_tls_flags(parser)
    parser.add_argument(
        "--release-tls-ca",
        default=config.tls_ca(),
        help="reach the Release service over TLS, trusting this PEM CA (env RELMAN_TLS_CA)",
    )
    parser.add_argument(
        "--release-tls-client-cert",
        default=config.tls_client_cert(),
        help="client certificate for a Release service with mutual TLS "
        "(env RELMAN_TLS_CLIENT_CERT; needs --release-tls-client-key)",
    )
    parser.add_argument(
        "--release-tls-client-key",
        default=config.tls_client_key(),
        help="PEM key of --release-tls-client-cert (env RELMAN_TLS_CLIENT_KEY)",
    )
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
    if args.lease_ttl <= 0:
        parser.error("--lease-ttl must be positive")
    if args.default_timeout <= 0:
        parser.error("--default-timeout must be positive")
    if args.sim_pod_delay < 0:
        parser.error("--sim-pod-delay must not be negative")
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
        crashloop_threshold=args.crashloop_threshold,
        default_timeout=args.default_timeout,
        auth=args.auth,
        token_file=args.token_file or args.data_dir / tokens.DEPLOYER_TOKEN_FILE,
        token=config.env("RELMAN_DEPLOYER_TOKEN"),
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
    try:
        asyncio.run(DeployerService(args.addr, settings).run_until_signal())
    except (OSError, RelmanError) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
