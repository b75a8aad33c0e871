"""Uploading a source archive, and building the same tree twice.

- **Throughput**: archives of ``UPLOAD_MB`` MB (made here by ``relman_cli.packaging`` from
  files of seeded random bytes, which gzip cannot shrink: the archive is as large as the
  tree) are sent with ``UploadSource`` in the CLI's 1 MiB chunks to the Release service
  (streamed to disk, hashed, checked as an archive, kept) and to the echo server's
  ``UploadSource`` (reads the stream, keeps nothing): the raw client-stream floor. In turns,
  round by round; each round sends the service an archive it does not hold yet (a held one is
  not sent again).
- **Memory**: the service's peak RSS (VmHWM) after a ``BIG_MB`` MB upload, against its RSS
  before: an upload streams to disk, so it must not grow with the archive.
- **Second build**: ``relman build`` of a ``BUILD_MB`` MB tree (Dockerfile ``FROM scratch``,
  ``COPY``; the local builder), then again unchanged: the second sends no bytes
  (``UploadSource`` is not called) and gives the same image digest; both wall times.

``python -m bench.uploads`` runs it alone (with its own echo server) and prints the JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from relman.v1 import build_pb2, build_pb2_grpc, release_pb2, release_pb2_grpc
from relman_cli.commands._source import CHUNK_BYTES
from relman_cli.packaging import Archive, package

from bench.clients import TOKENS, channel
from bench.procs import ServiceProcess, memory_kib
from bench.release import start_release

UPLOAD_MB = 100
BIG_MB = 500
BUILD_MB = 50
ROUNDS = 3
FILE_MB = 4
VENV_BIN = Path(sys.executable).parent


def make_tree(root: Path, megabytes: int, seed: int) -> None:
    """``megabytes`` MB of incompressible files (4 MB each) under ``root``."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    left = megabytes
    n = 0
    while left > 0:
        size = min(FILE_MB, left)
        (root / f"blob-{n:04d}.bin").write_bytes(rng.randbytes(size * 1024 * 1024))
        left -= size
        n += 1


def make_archive(work: Path, name: str, megabytes: int, seed: int) -> tuple[Path, Archive]:
    tree = work / f"tree-{name}"
    make_tree(tree, megabytes, seed)
    path = work / f"{name}.tgz"
    with path.open("wb") as out:
        made = package(tree, out)
    for file in tree.iterdir():
        file.unlink()
    tree.rmdir()
    return path, made


async def upload(addr: str, app: str, data: bytes, made: Archive) -> float:
    """Seconds to send ``data`` (the archive ``made``) with UploadSource, answer included."""

    async def requests() -> AsyncIterator[build_pb2.UploadSourceRequest]:
        header = build_pb2.UploadSourceHeader(app=app, sha256=made.sha256, size=made.size)
        yield build_pb2.UploadSourceRequest(header=header)
        view = memoryview(data)
        for offset in range(0, len(data), CHUNK_BYTES):
            yield build_pb2.UploadSourceRequest(chunk=bytes(view[offset : offset + CHUNK_BYTES]))

    async with channel(addr) as ch:
        stub = build_pb2_grpc.BuildServiceStub(ch)
        start = time.perf_counter()
        info = await stub.UploadSource(requests())
        elapsed = time.perf_counter() - start
    if info.size != made.size:
        raise RuntimeError(f"the upload kept {info.size} bytes of {made.size}")
    return elapsed


async def create_app(addr: str, app: str) -> None:
    async with channel(addr) as ch:
        await release_pb2_grpc.ReleaseServiceStub(ch).CreateApp(
            release_pb2.CreateAppRequest(name=app)
        )


def mb_per_s(size: int, seconds: list[float]) -> float:
    return size / statistics.median(seconds) / 1e6


async def throughput(work: Path, addr: str, echo_addr: str) -> dict[str, Any]:
    archives = [
        await asyncio.to_thread(make_archive, work, f"up{i}", UPLOAD_MB, seed=100 + i)
        for i in range(ROUNDS + 1)
    ]
    await create_app(addr, "uploads")
    floor: list[float] = []
    ours: list[float] = []
    # A warm-up of each (connections, the service's first write), then the rounds in turns.
    warm_path, warm = archives[0]
    warm_data = warm_path.read_bytes()
    await upload(echo_addr, "uploads", warm_data, warm)
    await upload(addr, "uploads", warm_data, warm)
    for path, made in archives[1:]:
        data = path.read_bytes()
        floor.append(await upload(echo_addr, "uploads", data, made))
        ours.append(await upload(addr, "uploads", data, made))
        path.unlink()
    warm_path.unlink()
    size = archives[1][1].size
    return {
        "archive_bytes": size,
        "chunk_bytes": CHUNK_BYTES,
        "rounds": ROUNDS,
        "floor_mb_per_s": mb_per_s(size, floor),
        "relman_mb_per_s": mb_per_s(size, ours),
        "ratio_of_floor": statistics.median(floor) / statistics.median(ours),
        "floor_s": floor,
        "relman_s": ours,
    }


async def memory(work: Path) -> dict[str, Any]:
    """On a service of its own (VmHWM is a lifetime peak): RSS after a first small upload,
    then the peak through a BIG_MB upload."""
    small_path, small = await asyncio.to_thread(make_archive, work, "small", 8, seed=8)
    path, made = await asyncio.to_thread(make_archive, work, "big", BIG_MB, seed=7)
    service = start_release(work, "uploads-memory")
    try:
        await create_app(service.addr, "uploads")
        await upload(service.addr, "uploads", small_path.read_bytes(), small)
        data = path.read_bytes()
        before = memory_kib(service.pid)["VmRSS"]
        seconds = await upload(service.addr, "uploads", data, made)
        after = memory_kib(service.pid)
    finally:
        service.stop()
        path.unlink()
        small_path.unlink()
    return {
        "archive_bytes": made.size,
        "rss_before_kib": before,
        "peak_rss_after_kib": after["VmHWM"],
        "growth_mib": (after["VmHWM"] - before) / 1024,
        "mb_per_s": made.size / seconds / 1e6,
    }


def _relman(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [str(VENV_BIN / "relman"), *argv], cwd=cwd, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"relman {' '.join(argv)} failed: {done.stderr or done.stdout}")
    return elapsed, done.stdout


def _upload_calls(service: ServiceProcess) -> int:
    assert service.log_path is not None
    text = service.log_path.read_text()
    return len(re.findall(r"rpc /relman\.v1\.BuildService/UploadSource ", text))


def _image(info: str) -> str:
    found = re.search(r"^Images\s+(\S+)", info, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no Images row in builds info:\n{info}")
    return found.group(1)


def second_build(work: Path, service: ServiceProcess) -> dict[str, Any]:
    tree = work / "tree-build"
    make_tree(tree / "assets", BUILD_MB, seed=3)
    (tree / "Dockerfile").write_text("FROM scratch\nCOPY assets /srv/assets\n")
    (tree / "convox.yml").write_text("services:\n  web:\n    build: .\n    port: 8080\n")
    env = {
        **os.environ,
        "RELMAN_RELEASE_ADDR": service.addr,
        "RELMAN_TOKEN": TOKENS[service.addr],
    }
    _relman(["apps", "create", "twice"], env, tree)
    walls, images, uploads = [], [], []
    for _ in range(2):
        before = _upload_calls(service)
        wall, out = _relman(["build", ".", "-a", "twice"], env, tree)
        build = re.search(r"^Build: (B\w+)$", out, re.MULTILINE)
        if build is None:
            raise RuntimeError(f"no Build line in:\n{out}")
        _, info = _relman(["builds", "info", build.group(1), "-a", "twice"], env, tree)
        walls.append(wall)
        images.append(_image(info))
        uploads.append(_upload_calls(service) - before)
    return {
        "tree_bytes": BUILD_MB * 1024 * 1024,
        "first_wall_s": walls[0],
        "second_wall_s": walls[1],
        "upload_calls": uploads,
        "same_digest": images[0] == images[1],
        "image": images[0],
    }


async def run(workdir: Path, echo_addr: str) -> dict[str, Any]:
    work = workdir / "uploads"
    work.mkdir()
    service = start_release(work, "uploads-release")
    try:
        result = {"throughput": await throughput(work, service.addr, echo_addr)}
        result["second_build"] = await asyncio.to_thread(second_build, work, service)
    finally:
        service.stop()
    result["memory"] = await memory(work)
    return result


def main() -> int:
    from bench.floors import start_echo

    with tempfile.TemporaryDirectory(prefix="relman-bench-uploads-") as tmp:
        echo = start_echo(Path(tmp))
        try:
            print(json.dumps(asyncio.run(run(Path(tmp), echo.addr)), indent=2, sort_keys=True))
        finally:
            echo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
