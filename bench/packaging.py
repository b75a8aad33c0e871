"""Packaging a source tree (what ``relman build`` sends) against ``tar czf`` of the same files.

Two trees of 10,000 files each, made here from a fixed seed: ``source`` (sizes spread like a
code base's, median about 3 kB, text that compresses like code) and ``tiny`` (100-byte
files, where the cost per file is everything). Each is packaged by
``relman_cli.packaging.package`` in this process and by ``tar czf`` (GNU tar piping to gzip
at its default level, 6, as ours) in turns, several times: wall and CPU time medians, and
their ratios. The archive's sha256 must not change between runs, nor after every file is
touched.

``python -m bench.packaging`` runs it alone and prints the JSON.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FILES = 10_000
RUNS = 7
WORDS = 2_000


def make_tree(root: Path, kind: str, files: int = FILES, seed: int = 11) -> int:
    """``files`` files under ``root`` in a few hundred directories; their total bytes."""
    rng = random.Random(seed)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 10)))
        for _ in range(WORDS)
    ]
    total = 0
    for i in range(files):
        folder = root / f"pkg{i % 300:03d}" / f"mod{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "tiny":
            text = f"# file {i}\n".ljust(100, "x")
        else:
            size = min(int(rng.lognormvariate(8.0, 1.1)), 400_000)
            line: list[str] = []
            lines: list[str] = []
            length = 0
            while length < size:
                word = rng.choice(words)
                line.append(word)
                length += len(word) + 1
                if len(line) == 8:
                    lines.append("    " + " ".join(line))
                    line = []
            lines.append(" ".join(line))
            text = "\n".join(lines)
        (folder / f"file{i}.py").write_text(text)
        total += len(text)
    return total


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(root: Path, out: Path) -> tuple[float, float, str]:
    from relman_cli.packaging import package

    cpu, wall = _cpu_self(), time.perf_counter()
    with open(out, "wb") as f:
        made = package(root, f)
    return time.perf_counter() - wall, _cpu_self() - cpu, made.sha256


def tar(root: Path, out: Path) -> tuple[float, float]:
    cpu, wall = _cpu_children(), time.perf_counter()
    subprocess.run(["tar", "czf", str(out), "-C", str(root), "."], check=True)
    return time.perf_counter() - wall, _cpu_children() - cpu


def measure(root: Path, work: Path, runs: int = RUNS) -> dict[str, Any]:
    walls: dict[str, list[float]] = {"ours": [], "tar": []}
    cpus: dict[str, list[float]] = {"ours": [], "tar": []}
    shas = set()
    for _ in range(runs):  # in turns, so that both see the same machine
        wall, cpu, sha = ours(root, work / "ours.tgz")
        walls["ours"].append(wall)
        cpus["ours"].append(cpu)
        shas.add(sha)
        wall, cpu = tar(root, work / "tar.tgz")
        walls["tar"].append(wall)
        cpus["tar"].append(cpu)
    for i, path in enumerate(sorted(root.rglob("*"))):  # `touch` every file
        os.utime(path, (2_000_000_000 + i, 2_000_000_000 + i))
    shas.add(ours(root, work / "ours.tgz")[2])
    result: dict[str, Any] = {
        "runs": runs,
        "archive_bytes": (work / "ours.tgz").stat().st_size,
        "tar_archive_bytes": (work / "tar.tgz").stat().st_size,
        "same_sha256_every_run_and_after_touch": len(shas) == 1,
        "sha256": sorted(shas)[0],
    }
    for name in ("ours", "tar"):
        result[name] = {
            "wall_p50_s": statistics.median(walls[name]),
            "wall_min_s": min(walls[name]),
            "cpu_p50_s": statistics.median(cpus[name]),
        }
    result["wall_ratio"] = result["ours"]["wall_p50_s"] / result["tar"]["wall_p50_s"]
    result["cpu_ratio"] = result["ours"]["cpu_p50_s"] / result["tar"]["cpu_p50_s"]
    return result


def run_sync(workdir: Path, runs: int = RUNS) -> dict[str, Any]:
    if shutil.which("tar") is None:
        raise RuntimeError("tar is not installed")
    results: dict[str, Any] = {"files": FILES}
    for kind in ("source", "tiny"):
        root = workdir / f"tree-{kind}"
        total = make_tree(root, kind)
        work = workdir / f"out-{kind}"
        work.mkdir()
        results[kind] = {"bytes": total, **measure(root, work, runs)}
        shutil.rmtree(root)
        shutil.rmtree(work)
    return results


async def run(workdir: Path) -> dict[str, Any]:
    import asyncio

    return await asyncio.to_thread(run_sync, workdir / "packaging")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="relman-bench-packaging-") as tmp:
        print(json.dumps(run_sync(Path(tmp)), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
