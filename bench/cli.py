"""CLI: ``relman releases -a app`` as a whole process, and where its start-up time goes.

Wall time is measured around the installed ``.venv/bin/relman`` run as a subprocess against a
real Release service (an app with a build and a few env releases: one full default page),
taking turns with the import floor (``import grpc`` + stubs) so both see the same machine.
Import offenders come from ``PYTHONPROFILEIMPORTTIME=1`` (the same as ``-X importtime``),
median per module over a few runs.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench.clients import TOKENS, channel
from bench.floors import COUNTER_KEY, import_floor_commands, process_walls
from bench.procs import REPO, VENV_BIN
from bench.release import BASE_ENV, start_release
from bench.seed import app_with_build

RUNS = 15
IMPORT_PROFILES = 3
WARMUP = 2
APP = "cli"


def parse_importtime(stderr: str) -> list[dict[str, Any]]:
    """Rows of ``-X importtime`` output: module, self and cumulative µs, nesting depth.

    >>> parse_importtime("import time: self [us] | cumulative | imported package\\n"
    ...                  "import time:       120 |        340 |   grpc._cython\\n")
    [{'module': 'grpc._cython', 'self_us': 120, 'cumulative_us': 340, 'depth': 1}]
    """
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append(
            {
                "module": name.strip(),
                "self_us": int(parts[0]),
                "cumulative_us": int(parts[1]),
                "depth": depth,
            }
        )
    return rows


def median_rows(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per module with the median self and cumulative time over several runs.

    >>> a = [{"module": "m", "self_us": 1, "cumulative_us": 5, "depth": 0}]
    >>> b = [{"module": "m", "self_us": 3, "cumulative_us": 9, "depth": 0}]
    >>> median_rows([a, b, a])
    [{'module': 'm', 'self_us': 1, 'cumulative_us': 5, 'depth': 0}]
    """
    by_module: dict[str, list[dict[str, Any]]] = {}
    for rows in runs:
        for row in rows:
            by_module.setdefault(row["module"], []).append(row)
    return [
        {
            "module": module,
            "self_us": int(statistics.median(r["self_us"] for r in rows)),
            "cumulative_us": int(statistics.median(r["cumulative_us"] for r in rows)),
            "depth": rows[0]["depth"],
        }
        for module, rows in by_module.items()
    ]


def top_offenders(rows: list[dict[str, Any]], n: int = 10) -> dict[str, Any]:
    """The top-level imports with the largest cumulative time, and the modules with the
    largest own (self) time."""
    top_level = [r for r in rows if r["depth"] == 0]
    return {
        "by_cumulative": sorted(top_level, key=lambda r: -r["cumulative_us"])[:n],
        "by_self": sorted(rows, key=lambda r: -r["self_us"])[:n],
        "total_us": sum(r["self_us"] for r in rows),
    }


async def _seed(addr: str) -> None:
    from relman.v1 import release_pb2, release_pb2_grpc

    async with channel(addr) as ch:
        stub = release_pb2_grpc.ReleaseServiceStub(ch)
        await app_with_build(stub, APP, env=BASE_ENV)
        for i in range(9):
            await stub.ChangeEnv(release_pb2.ChangeEnvRequest(app=APP, set={COUNTER_KEY: str(i)}))


async def run(workdir: Path) -> dict[str, Any]:
    relman = VENV_BIN / "relman"
    service = start_release(workdir, "cli-release")
    try:
        await _seed(service.addr)
        env = {
            **os.environ,
            "RELMAN_RELEASE_ADDR": service.addr,
            "RELMAN_TOKEN": TOKENS[service.addr],
        }
        argv = [str(relman), "releases", "-a", APP]
        check = await asyncio.to_thread(
            subprocess.run, argv, cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        lines = check.stdout.splitlines()
        if check.returncode != 0 or not lines or not lines[0].startswith("ID"):
            raise RuntimeError(f"relman releases failed ({check.returncode}): {check.stderr}")
        walls = await asyncio.to_thread(
            process_walls,
            {"cli": (argv, env), **import_floor_commands()},
            RUNS,
            WARMUP,
        )
        profiles = []
        for _ in range(IMPORT_PROFILES):
            profiled = await asyncio.to_thread(
                subprocess.run,
                argv,
                cwd=REPO,
                env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
                capture_output=True,
                text=True,
                check=False,
            )
            profiles.append(parse_importtime(profiled.stderr))
        return {
            "command": "relman releases -a cli",
            "rows": len(lines) - 1,
            "wall": walls["cli"],
            # The import floor again, measured in turns with the CLI runs above.
            "import_floor": walls["grpc_and_stubs"],
            "python_bare": walls["python_bare"],
            "imports": top_offenders(median_rows(profiles)),
        }
    finally:
        service.stop()
