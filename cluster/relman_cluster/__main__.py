"""python -m relman_cluster [--workdir DIR] [--nodes N] [--pod-delay S]

Builds the binaries if needed, runs a local control plane with emulated kubelets in the
foreground and stops everything cleanly on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from relman_cluster.build import BuildError
from relman_cluster.cluster import LocalCluster
from relman_cluster.controlplane import ControlPlaneError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relman_cluster", description=__doc__)
    parser.add_argument("--workdir", default="./.relman/cluster", help="state/log directory")
    parser.add_argument("--nodes", type=int, default=1, help="number of emulated nodes")
    parser.add_argument(
        "--pod-delay", type=float, default=0.2, help="seconds from pod binding to Running/Ready"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the previous etcd data in --workdir instead of wiping it",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="startup deadline (s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    workdir = Path(args.workdir).resolve()
    if not args.keep and workdir.exists():
        # A fresh cluster every time: new PKI/token, so stale etcd data would not match.
        shutil.rmtree(workdir)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    cluster = LocalCluster(workdir, nodes=args.nodes, pod_delay=args.pod_delay)
    try:
        cluster.start(timeout=args.timeout)
    except (BuildError, ControlPlaneError, RuntimeError) as exc:
        print(f"relman_cluster: failed to start: {exc}", file=sys.stderr)
        cluster.stop()
        return 1
    try:
        print(
            f"relman local cluster ready in {cluster.startup_seconds:.1f}s "
            f"({args.nodes} emulated node(s)); logs in {workdir / 'logs'}"
        )
        print(f"kubeconfig: {cluster.kubeconfig}")
        print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
        while not stop.wait(1.0):
            assert cluster.control_plane is not None
            try:
                cluster.control_plane.check_alive()
            except ControlPlaneError as exc:
                print(f"relman_cluster: {exc}", file=sys.stderr)
                return 1
        print("relman_cluster: stopping", flush=True)
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
