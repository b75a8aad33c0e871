"""Locate (and if needed build) the Kubernetes control-plane binaries via cluster/build.sh."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

KUBE_VERSION = "1.20.2"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl")


class BuildError(RuntimeError):
    """The control-plane binaries are missing and could not be built."""


def default_cache_dir() -> Path:
    env = os.environ.get("RELMAN_KUBE_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "relman" / f"kube-{KUBE_VERSION}"


def find_build_script() -> Path | None:
    """cluster/build.sh, found relative to this package (source checkout or editable install)."""
    env = os.environ.get("RELMAN_KUBE_BUILD_SCRIPT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "build.sh", here / "build.sh"):
        if cand.is_file():
            return cand
    return None


def binaries_present(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / b, os.X_OK) for b in BINARIES)


def ensure_binaries(*, build: bool = True, timeout: float = 3600.0, quiet: bool = False) -> Path:
    """Return the directory holding kube-apiserver & co, building them with build.sh if needed.

    Raises BuildError (with the tail of the build output) when that is impossible.
    """
    bin_dir = default_cache_dir() / "bin"
    if binaries_present(bin_dir) and shutil.which("etcd"):
        return bin_dir
    if not build:
        raise BuildError(f"Kubernetes binaries not found in {bin_dir} (run cluster/build.sh)")
    script = find_build_script()
    if script is None:
        raise BuildError("cluster/build.sh not found; set RELMAN_KUBE_BUILD_SCRIPT")
    tail: collections.deque[str] = collections.deque(maxlen=40)
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        ["bash", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            if not quiet:
                print(line, end="", file=sys.stderr, flush=True)
            if time.monotonic() > deadline:
                proc.kill()
                raise BuildError(f"{script} did not finish within {timeout:.0f}s")
        rc = proc.wait()
    if rc != 0:
        text = "\n".join(tail)
        raise BuildError(f"{script} failed with exit code {rc}:\n{text}")
    if not binaries_present(bin_dir):
        raise BuildError(f"{script} succeeded but binaries are missing from {bin_dir}")
    if not shutil.which("etcd"):
        raise BuildError("etcd not on PATH (Debian package etcd-server)")
    return bin_dir
