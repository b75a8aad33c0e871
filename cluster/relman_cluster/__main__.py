"""python -m relman_cluster [--workdir DIR] [--emulated [--nodes N] [--pod-delay S]]

Builds the binaries if needed and runs a local Kubernetes 1.20.2 cluster in the foreground:
the control plane plus one real node (a kubelet on a private dockerd, with a loopback
registry), or with --emulated N emulated nodes that run no containers. Prints how long each
phase took and the settings a relman needs (NAME=value lines; also written as
``export NAME=value`` lines to <workdir>/env, for ``source``). Ctrl-C / SIGTERM stops
everything and cleans up; a start after a crash first cleans up what the last run left.
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
from relman_cluster.dockerd import ContainersUnavailable
from relman_cluster.node import NodeError, cleanup_node_workdir, node_unavailable_reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relman_cluster", description=__doc__)
    parser.add_argument("--workdir", default="./.relman/cluster", help="state/log directory")
    parser.add_argument(
        "--emulated",
        action="store_true",
        help="emulated nodes (no containers run) instead of one real node",
    )
    parser.add_argument(
        "--nodes", type=int, default=1, help="number of emulated nodes (with --emulated)"
    )
    parser.add_argument(
        "--pod-delay",
        type=float,
        default=0.2,
        help="emulated nodes: seconds from pod binding to Running/Ready",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the previous etcd data in --workdir instead of wiping it",
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="startup deadline (s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.nodes != 1 and not args.emulated:
        parser.error("--nodes needs --emulated (the real mode runs one node)")

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    workdir = Path(args.workdir).resolve()
    if not args.emulated:
        reason = node_unavailable_reason()
        if reason:
            print(f"relman_cluster: a real node cannot run here: {reason}", file=sys.stderr)
            print("relman_cluster: (--emulated runs without Docker)", file=sys.stderr)
            return 1
    # Whatever a previous run left (even one killed with SIGKILL): processes, containers,
    # mounts, cgroups, the bridge, log links. Before the directory goes.
    cleanup_node_workdir(workdir / "node")
    if not args.keep and workdir.exists():
        # A fresh cluster every time: new PKI/token, so stale etcd data would not match.
        shutil.rmtree(workdir)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    cluster = LocalCluster(
        workdir, emulated=args.emulated, nodes=args.nodes, pod_delay=args.pod_delay
    )
    try:
        cluster.start(timeout=args.timeout)
    except (BuildError, ControlPlaneError, NodeError, ContainersUnavailable, RuntimeError) as exc:
        print(f"relman_cluster: failed to start: {exc}", file=sys.stderr)
        cluster.stop()
        return 1
    try:
        kind = f"{args.nodes} emulated node(s)" if args.emulated else "1 real node"
        print(
            f"relman local cluster ready in {cluster.startup_seconds:.1f}s ({kind}); "
            f"logs in {workdir / 'logs'}"
            + ("" if args.emulated else f" and {cluster.node_workdir / 'logs'}")
        )
        for phase, seconds in cluster.timings.items():
            print(f"  {phase:<24} {seconds:6.1f}s")
        print(f"  {'memory (RSS, all parts)':<24} {cluster.rss_bytes() / 2**20:6.0f} MiB")
        env_file = cluster.write_env_file()
        for name, value in cluster.settings.items():
            print(f"{name}={value}")
        print(f"# the same as `export` lines: source {env_file}", flush=True)
        while not stop.wait(1.0):
            try:
                cluster.check_alive()
            except (ControlPlaneError, NodeError) as exc:
                print(f"relman_cluster: {exc}", file=sys.stderr)
                return 1
        print("relman_cluster: stopping", flush=True)
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
