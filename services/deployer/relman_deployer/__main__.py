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

from relman_common import config
from relman_common.db import sqlite_url
from relman_common.errors import RelmanError
from relman_common.server import setup_logging

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
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=config.data_dir(),
        help="state directory; the SQLite file deployer.db lives here "
        "(env RELMAN_DATA_DIR, default %(default)s)",
    )
    parser.add_argument(
        "--database-url",
        default=config.database_url(),
        help="database URL, e.g. postgresql://user@host/db; overrides SQLite "
        "(env RELMAN_DATABASE_URL)",
    )
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
    args = parser.parse_args(argv)
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
    options = {"pod_delay": args.sim_pod_delay} if args.backend == "sim" else {}
    return Settings(
        database_url=url,
        release_addr=args.release_addr,
        backend=args.backend,
        backend_options=options,
        lease_ttl=args.lease_ttl,
        crashloop_threshold=args.crashloop_threshold,
        default_timeout=args.default_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging("relman-deployer")
    settings = settings_from(args)
    url = settings.database_url
    log.info(
        "database %s, backend %s, release service %s, instance %s",
        url.split("@")[-1] if "@" in url else url,
        settings.backend,
        settings.release_addr,
        settings.owner,
    )
    try:
        asyncio.run(DeployerService(args.addr, settings).run_until_signal())
    except (OSError, RelmanError) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
