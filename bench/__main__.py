"""``python -m bench`` (``make bench``): floors, then relman against them, then the report."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    cli,
    deployer,
    floors,
    packaging,
    pg,
    release,
    replicas,
    report,
    scale,
    uploads,
)
from bench.procs import REPO, ServiceProcess, module_runs

SECTIONS = (
    "floors",
    "release",
    "scale",
    "deployer",
    "replicas",
    "cli",
    "packaging",
    "uploads",
)
DEFAULT_SCALE = "100,10000,100000,1000000"
DEFAULT_PG_SCALE = "100,10000,100000"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "commit": commit or "unknown",
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results: dict[str, Any] = {"machine": machine(), "errors": {}}
        self.echo: ServiceProcess | None = None

    async def section(self, name: str, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run one measurement; a failure is recorded and the rest of the bench goes on."""
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            value = await fn()
        except Exception as err:
            self.results["errors"][name] = f"{type(err).__name__}: {err}"[:2000]
            log(f"{name} FAILED after {time.perf_counter() - t0:.1f}s: {err}")
            traceback.print_exc(file=sys.stderr)
            return
        parts = name.split(".")
        node = self.results
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        log(f"{name} done in {time.perf_counter() - t0:.1f}s")

    def needs(self, module: str) -> None:
        if not module_runs(module):
            raise RuntimeError(f"`python -m {module} --help` does not run yet")

    def pg_or_fail(self) -> None:
        why = pg.pg_available()
        if why:
            raise RuntimeError(why)

    async def floors(self) -> None:
        assert self.echo is not None
        echo_addr = self.echo.addr
        w = self.workdir
        await self.section("floors.echo", lambda: floors.echo_floor(echo_addr))
        await self.section("floors.sqlite_insert", lambda: asyncio.to_thread(self._sqlite_floor, w))
        await self.section("floors.pg_insert", lambda: asyncio.to_thread(self._pg_floor))
        await self.section("floors.import", lambda: asyncio.to_thread(floors.import_floor))

    def _sqlite_floor(self, w: Path) -> dict[str, Any]:
        return floors.insert_floor(floors.SqliteInsertFloor(w / "floor.db"))

    def _pg_floor(self) -> dict[str, Any]:
        self.pg_or_fail()
        with pg.fresh_database("floor") as url:
            return floors.insert_floor(floors.PgInsertFloor(url))

    async def release(self) -> None:
        assert self.echo is not None
        echo_addr = self.echo.addr

        async def sqlite() -> Any:
            self.needs("relman_release")
            floor = floors.SqliteInsertFloor(self.workdir / "release-floor.db")
            return await release.run(self.workdir, "release-sqlite", echo_addr, floor)

        async def postgres() -> Any:
            self.needs("relman_release")
            self.pg_or_fail()
            with (
                pg.fresh_database("release") as url,
                pg.fresh_database("release_floor") as floor_url,
                pg.fresh_database("release_echo_tx") as echo_tx_url,
            ):
                floor = floors.PgInsertFloor(floor_url)
                return await release.run(
                    self.workdir, "release-pg", echo_addr, floor, url, echo_tx_url
                )

        await self.section("release.sqlite", sqlite)
        await self.section("release.postgres", postgres)

    async def scale(self) -> None:
        assert self.echo is not None
        echo_addr = self.echo.addr

        async def sqlite() -> Any:
            self.needs("relman_release")
            return await scale.run(
                self.workdir, "scale-sqlite", sizes(self.args.scale_sizes), echo_addr
            )

        async def postgres() -> Any:
            self.needs("relman_release")
            self.pg_or_fail()
            with pg.fresh_database("scale") as url:
                return await scale.run(
                    self.workdir, "scale-pg", sizes(self.args.pg_scale_sizes), echo_addr, url
                )

        await self.section("scale.sqlite", sqlite)
        if self.args.pg_scale_sizes:
            await self.section("scale.postgres", postgres)

    async def deployer(self) -> None:
        assert self.echo is not None
        echo_addr = self.echo.addr

        async def run() -> Any:
            self.needs("relman_release")
            self.needs("relman_deployer")
            return await deployer.run(self.workdir, echo_addr)

        await self.section("deployer", run)

    async def replicas(self) -> None:
        async def run() -> Any:
            self.needs("relman_release")
            self.needs("relman_deployer")
            return await replicas.run(self.workdir)

        await self.section("replicas", run)

    async def cli(self) -> None:
        async def run() -> Any:
            self.needs("relman_release")
            return await cli.run(self.workdir)

        await self.section("cli", run)

    async def packaging(self) -> None:
        workdir = self.workdir
        await self.section("packaging", lambda: packaging.run(workdir))

    async def uploads(self) -> None:
        assert self.echo is not None
        echo_addr = self.echo.addr

        async def run() -> Any:
            self.needs("relman_release")
            return await uploads.run(self.workdir, echo_addr)

        await self.section("uploads", run)

    async def run(self, only: list[str]) -> dict[str, Any]:
        start = time.perf_counter()
        self.echo = floors.start_echo(self.workdir)
        try:
            for name in SECTIONS:
                if name in only:
                    await getattr(self, name)()
        finally:
            self.echo.stop()
        self.results["elapsed_s"] = time.perf_counter() - start
        return self.results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    parser.add_argument("--scale-sizes", default=DEFAULT_SCALE, help="releases per app, SQLite")
    parser.add_argument(
        "--pg-scale-sizes", default=DEFAULT_PG_SCALE, help="releases per app, PostgreSQL"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    workdir = Path(tempfile.mkdtemp(prefix="relman-bench-"))
    log(f"work directory {workdir}")
    try:
        results = asyncio.run(Bench(args, workdir).run(only))
    finally:
        if args.keep_workdir:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    md, _ratios, targets = report.write(results, args.out)
    print(md)
    log(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.md'}")
    missed = [t.name for t in targets if not t.met]
    log(f"{len(targets) - len(missed)}/{len(targets)} targets met in {results['elapsed_s']:.0f}s")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
