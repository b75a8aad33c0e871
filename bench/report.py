"""From raw results to ratios, target verdicts, JSON and Markdown."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Ratio:
    name: str
    value: float
    floor: float
    unit: str
    floor_name: str

    @property
    def ratio(self) -> float:
        return self.value / self.floor if self.floor else float("inf")


@dataclass(frozen=True)
class Target:
    """``actual <= limit`` (``at_most``) or ``actual >= limit``."""

    name: str
    actual: float
    limit: float
    unit: str
    at_most: bool
    limit_says: str

    @property
    def met(self) -> bool:
        return self.actual <= self.limit if self.at_most else self.actual >= self.limit

    def verdict(self) -> str:
        if self.met:
            return "met"
        if self.limit == 0:
            return f"MISSED by {self.actual:g} {self.unit}".rstrip()
        if self.at_most:
            return f"MISSED by {self.actual / self.limit:.2f}x (+{self.actual - self.limit:.3g})"
        return f"MISSED: {self.actual / self.limit:.0%} of the limit"


def dig(data: dict[str, Any], path: str) -> Any:
    """``dig(d, "a.b.c")`` is ``d["a"]["b"]["c"]``; KeyError names the missing path."""
    cur: Any = data
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(path)
        cur = cur[part]
    return cur


def _try(out: list[Any], missing: list[str], make: Callable[[], Any], what: str) -> None:
    try:
        out.append(make())
    except (KeyError, TypeError) as err:
        missing.append(f"{what}: no data ({err})")


def ratios(r: dict[str, Any]) -> tuple[list[Ratio], list[str]]:
    out: list[Ratio] = []
    missing: list[str] = []

    def add(name: str, value: str, floor: str, unit: str, floor_name: str) -> None:
        _try(
            out,
            missing,
            lambda: Ratio(name, float(dig(r, value)), float(dig(r, floor)), unit, floor_name),
            name,
        )

    def add_sum(name: str, value: str, floors: list[str], unit: str, floor_name: str) -> None:
        _try(
            out,
            missing,
            lambda: Ratio(
                name, float(dig(r, value)), sum(float(dig(r, f)) for f in floors), unit, floor_name
            ),
            name,
        )

    for op in ("env_change", "release_create"):
        for db in ("sqlite", "postgres"):
            for c in ("c1", "c8"):
                base = f"release.{db}.{op}.{c}"
                for q in ("p50_ms", "p99_ms"):
                    add_sum(
                        f"{op} {q[:3]} {db} {c[1:]} client(s)",
                        f"{base}.{q}",
                        [f"{base}.floor_echo.{q}", f"{base}.floor_insert.{q}"],
                        "ms",
                        f"echo + {db} durable insert, in turns",
                    )
                add(
                    f"{op} throughput {db} {c[1:]} client(s)",
                    f"{base}.per_s",
                    f"{base}.floor_echo.per_s",
                    "ops/s",
                    "echo, in turns",
                )
                add(
                    f"{op} throughput {db} {c[1:]} client(s) vs inserts",
                    f"{base}.per_s",
                    f"{base}.floor_insert.per_s",
                    "ops/s",
                    "durable inserts, in turns",
                )
    for db in ("sqlite", "postgres"):
        scale = r.get("scale", {}).get(db, {})
        for size in scale:
            if size in ("100", "skipped", "echo", "start"):
                continue
            for page in ("first_page", "deep_page"):
                for q in ("p50_ms", "p99_ms"):
                    add(
                        f"list {page.replace('_', ' ')} {q[:3]} {db} {size} vs 100",
                        f"scale.{db}.{size}.{page}.{q}",
                        f"scale.{db}.100.{page}.{q}",
                        "ms",
                        "same at 100 releases",
                    )
    for db in ("sqlite", "postgres"):
        for q in ("p50_ms", "p99_ms"):
            add(
                f"ListReleases (20 rows) {q[:3]} {db} vs echo",
                f"scale.{db}.100.first_page.{q}",
                f"scale.{db}.echo.first_page.{q}",
                "ms",
                "echo ListReleases, same page, in turns",
            )
    for c in ("c1", "c8"):
        base = f"release.postgres.env_change.{c}"
        add(
            f"env_change throughput postgres {c[1:]} client(s) vs echo + write tx",
            f"{base}.per_s",
            f"{base}.floor_echo_tx.per_s",
            "ops/s",
            "echo + durable PostgreSQL write transaction, in turns",
        )
    dep = "deployer.concurrent"
    add(
        "200 promotes events/s",
        f"{dep}.events_per_s",
        f"{dep}.stream_floor_matched.events_per_s",
        "events/s",
        "echo streams (same shape)",
    )
    add(
        "1000 watchers fan-out lag p50",
        "deployer.watchers.fanout_lag_ms.p50_ms",
        "deployer.watchers.floor.fanout_lag_ms.p50_ms",
        "ms",
        "echo fan-out, same timeline",
    )
    add(
        "1000 watchers fan-out lag p99",
        "deployer.watchers.fanout_lag_ms.p99_ms",
        "deployer.watchers.floor.fanout_lag_ms.p99_ms",
        "ms",
        "echo fan-out, same timeline",
    )
    for q in ("p50_ms", "p99_ms"):
        add(
            f"1000 watchers fan-out lag {q[:3]} vs all-connected floor",
            f"deployer.watchers.fanout_lag_ms.{q}",
            f"deployer.watchers.floor_all_subscribed.fanout_lag_ms.{q}",
            "ms",
            "echo fan-out, all watchers connected first",
        )
    add(
        "CLI `relman releases` wall p50",
        "cli.wall.p50_ms",
        "cli.import_floor.p50_ms",
        "ms",
        "import grpc + stubs, in turns",
    )
    for svc in ("release", "deployer"):
        add(
            f"{svc} RSS under 200 promotes vs idle",
            f"{dep}.memory_kib.peak_rss_sampled.{svc}",
            f"deployer.memory_idle_kib.{svc}.VmRSS",
            "KiB",
            "idle",
        )
    return out, missing


def targets(r: dict[str, Any]) -> tuple[list[Target], list[str]]:
    """The issue's speed targets first, (a) to (e), then the bench's older ones."""
    out: list[Target] = []
    missing: list[str] = []

    def add(make: Callable[[], Target], what: str) -> None:
        _try(out, missing, make, what)

    dep = "deployer.concurrent"
    add(
        lambda: Target(
            "(a) 200 concurrent promotes: events/s",
            dig(r, f"{dep}.events_per_s"),
            0.5 * dig(r, f"{dep}.stream_floor_matched.events_per_s"),
            "events/s",
            False,
            "50% of the echo stream floor",
        ),
        "events/s target",
    )
    add(
        lambda: Target(
            "(a) 200 concurrent promotes: completion latency p50",
            dig(r, f"{dep}.completion_latency.p50_ms"),
            100.0,
            "ms",
            True,
            "100 ms",
        ),
        "completion latency target",
    )
    add(
        lambda: Target(
            "(b) release create p50 on SQLite (1 client)",
            dig(r, "release.sqlite.release_create.c1.p50_ms"),
            1.5
            * (
                dig(r, "release.sqlite.release_create.c1.floor_echo.p50_ms")
                + dig(r, "release.sqlite.release_create.c1.floor_insert.p50_ms")
            ),
            "ms",
            True,
            "1.5x (echo + durable insert)",
        ),
        "release create target",
    )
    add(
        lambda: Target(
            "(c) env change throughput, 8 clients on 8 apps, PostgreSQL",
            dig(r, "release.postgres.env_change.c8.per_s"),
            0.5 * dig(r, "release.postgres.env_change.c8.floor_echo_tx.per_s"),
            "ops/s",
            False,
            "50% of echo + durable write tx, 8 clients",
        ),
        "env change throughput target",
    )
    add(
        lambda: Target(
            "(d) ListReleases (20 rows) p50 (SQLite)",
            dig(r, "scale.sqlite.100.first_page.p50_ms"),
            2.0 * dig(r, "scale.sqlite.echo.first_page.p50_ms"),
            "ms",
            True,
            "2x the echo unary floor",
        ),
        "ListReleases target",
    )
    add(
        lambda: Target(
            "(e) 1000 watchers: fan-out lag p99",
            dig(r, "deployer.watchers.fanout_lag_ms.p99_ms"),
            1.2 * dig(r, "deployer.watchers.floor.fanout_lag_ms.p99_ms"),
            "ms",
            True,
            "1.2x the echo fan-out floor",
        ),
        "fan-out lag target",
    )
    add(
        lambda: Target(
            "200 concurrent promotes: events lost",
            dig(r, f"{dep}.events_lost") + dig(r, f"{dep}.events_duplicated"),
            0,
            "events",
            True,
            "0",
        ),
        "lost events target",
    )
    rep = "replicas.fan_out"
    add(
        lambda: Target(
            "Watch on the other Deployer (LISTEN/NOTIFY): fan-out lag p99",
            dig(r, f"{rep}.other.lag_ms.p99_ms"),
            2 * dig(r, f"{rep}.same.lag_ms.p99_ms"),
            "ms",
            True,
            "2x the lag on the Deployer running it",
        ),
        "cross-replica lag target",
    )
    add(
        lambda: Target(
            "takeover of a killed owner's deployment",
            dig(r, "replicas.takeover.takeover_s"),
            dig(r, "replicas.takeover.lease_ttl_s") + 2,
            "s",
            True,
            "lease TTL + 2 s",
        ),
        "takeover target",
    )
    add(
        lambda: Target(
            "1000 watchers: streams that got every event",
            dig(r, "deployer.watchers.complete"),
            dig(r, "deployer.watchers.watchers"),
            "streams",
            False,
            "all",
        ),
        "watchers delivery target",
    )
    for page in ("first_page", "deep_page"):
        add(
            lambda page=page: Target(  # type: ignore[misc]
                f"list {page.replace('_', ' ')} p50 at 100k releases (SQLite)",
                dig(r, f"scale.sqlite.100k.{page}.p50_ms"),
                1.2 * dig(r, f"scale.sqlite.100.{page}.p50_ms"),
                "ms",
                True,
                "1.2x the same at 100",
            ),
            f"list {page} target",
        )
    add(
        lambda: Target(
            "CLI `relman releases -a app` wall p50",
            dig(r, "cli.wall.p50_ms"),
            1.5 * dig(r, "cli.import_floor.p50_ms"),
            "ms",
            True,
            "1.5x the import floor",
        ),
        "CLI target",
    )
    for tree in ("source", "tiny"):
        add(
            lambda tree=tree: Target(  # type: ignore[misc]
                f"packaging a 10,000-file tree ({tree}) vs `tar czf`, wall p50",
                dig(r, f"packaging.{tree}.ours.wall_p50_s"),
                1.5 * dig(r, f"packaging.{tree}.tar.wall_p50_s"),
                "s",
                True,
                "1.5x `tar czf` of the same files",
            ),
            f"packaging {tree} target",
        )
    add(
        lambda: Target(
            "packaging: archives that changed between runs or after a touch",
            sum(
                not dig(r, f"packaging.{tree}.same_sha256_every_run_and_after_touch")
                for tree in ("source", "tiny")
            ),
            0,
            "trees",
            True,
            "0",
        ),
        "packaging determinism target",
    )
    add(
        lambda: Target(
            "source upload throughput (1 MiB chunks)",
            dig(r, "uploads.throughput.relman_mb_per_s"),
            0.5 * dig(r, "uploads.throughput.floor_mb_per_s"),
            "MB/s",
            False,
            "50% of the raw client-stream floor",
        ),
        "upload throughput target",
    )
    add(
        lambda: Target(
            "Release service RSS growth through a 500 MB upload",
            dig(r, "uploads.memory.growth_mib"),
            64,
            "MiB",
            True,
            "64 MiB",
        ),
        "upload memory target",
    )
    add(
        lambda: Target(
            "second build of an unchanged tree: uploads, and digest changes",
            dig(r, "uploads.second_build.upload_calls")[1]
            + (not dig(r, "uploads.second_build.same_digest")),
            0,
            "",
            True,
            "0 (nothing sent, same digest)",
        ),
        "second build target",
    )
    return out, missing


def _fmt(x: float) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def floor_rows(r: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    f = r.get("floors", {})
    for op in ("env_change", "release_create"):
        for d in f.get("echo", {}).get(op, {}).values():
            rows.append(
                [
                    f"echo unary ({op} shape), {d['clients']} client(s)",
                    f"p50 {_fmt(d['p50_ms'])} ms, p99 {_fmt(d['p99_ms'])} ms, "
                    f"{_fmt(d['per_s'])} calls/s",
                ]
            )
    for key in ("stream_single", "stream_200x25"):
        d = f.get("echo", {}).get(key)
        if d:
            rows.append(
                [
                    f"echo server stream, {d['streams']} x {d['events_per_stream']} events",
                    f"{_fmt(d['messages_per_s'])} messages/s",
                ]
            )
    for key, label in (("sqlite_insert", "SQLite WAL+FULL"), ("pg_insert", "PostgreSQL")):
        for d in f.get(key, {}).values():
            rows.append(
                [
                    f"durable insert {label}, {d['clients']} writer(s)",
                    f"p50 {_fmt(d['p50_ms'])} ms, p99 {_fmt(d['p99_ms'])} ms, "
                    f"{_fmt(d['per_s'])} inserts/s",
                ]
            )
    for key, label in (("python_bare", "python -c pass"), ("grpc_and_stubs", "import floor")):
        d = f.get("import", {}).get(key)
        if d:
            rows.append([f"{label} (whole process)", f"p50 {_fmt(d['p50_ms'])} ms"])
    return rows


def markdown(r: dict[str, Any], rs: list[Ratio], ts: list[Target], missing: list[str]) -> str:
    m = r["machine"]
    lines = [
        "# relman benchmark results",
        "",
        f"- date: {m['date']}; cores: {m['cores']}; CPU: {m['cpu']}",
        f"- Python {m['python']}; commit {m['commit']}; load average at start: {m['loadavg']}",
        f"- whole run: {r.get('elapsed_s', 0):.0f} s",
        "",
        "## Targets",
        "",
    ]
    lines += _table(
        ["target", "actual", "limit", "verdict"],
        [
            [t.name, f"{_fmt(t.actual)} {t.unit}", f"{_fmt(t.limit)} ({t.limit_says})", t.verdict()]
            for t in ts
        ],
    )
    lines += ["", "## Ratios (relman / floor)", ""]
    lines += _table(
        ["measurement", "relman", "floor", "ratio"],
        [
            [
                x.name,
                f"{_fmt(x.value)} {x.unit}",
                f"{_fmt(x.floor)} ({x.floor_name})",
                f"{x.ratio:.2f}x",
            ]
            for x in rs
        ],
    )
    lines += ["", "## Floors", ""]
    lines += _table(["floor", "value"], floor_rows(r))
    lines += ["", "## Other figures", ""]
    lines += _table(["figure", "value"], other_rows(r))
    offenders = r.get("cli", {}).get("imports", {}).get("by_cumulative", [])
    if offenders:
        lines += ["", "## CLI import-time offenders (top-level, cumulative)", ""]
        lines += _table(
            ["module", "cumulative ms", "self ms"],
            [
                [o["module"], _fmt(o["cumulative_us"] / 1000), _fmt(o["self_us"] / 1000)]
                for o in offenders
            ],
        )
    if missing or r.get("errors"):
        lines += ["", "## Not measured", ""]
        lines += [f"- {section}: {err}" for section, err in r.get("errors", {}).items()]
        lines += [f"- {x}" for x in missing]
    lines += ["", "## Method", ""] + [f"- {note}" for note in METHOD_NOTES]
    return "\n".join(lines) + "\n"


def other_rows(r: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []

    def row(label: str, path: str, fmt: Callable[[Any], str]) -> None:
        with contextlib.suppress(KeyError):
            rows.append([label, fmt(dig(r, path))])

    dep = "deployer.concurrent"
    row("200 promotes: succeeded", f"{dep}.succeeded", str)
    row("200 promotes: events received", f"{dep}.events", str)
    row("200 promotes: wall (median round)", f"{dep}.elapsed_s", lambda x: f"{x:.2f} s")
    row(
        "200 promotes: events/s of each round",
        f"{dep}.rounds_events_per_s",
        lambda xs: " / ".join(_fmt(x) for x in xs),
    )
    row(
        "200 promotes: completion latency p50 of each round",
        f"{dep}.rounds_completion_p50_ms",
        lambda xs: " / ".join(f"{_fmt(x)} ms" for x in xs),
    )
    row(
        "200 promotes: echo stream floor runs (events/s)",
        f"{dep}.stream_floor_matched.runs_events_per_s",
        lambda xs: " / ".join(_fmt(x) for x in xs),
    )
    row(
        "200 promotes: events lost / duplicated / streams differing from the stored log",
        dep,
        lambda d: f"{d['events_lost']} / {d['events_duplicated']} / "
        f"{d['streams_differing_from_stored_log']}",
    )
    row(
        "200 promotes: completion latency (backend done -> client)",
        f"{dep}.completion_latency",
        lambda d: f"p50 {_fmt(d['p50_ms'])} ms, p99 {_fmt(d['p99_ms'])} ms",
    )
    row(
        "sequential promotes: completion latency (backend done -> client)",
        "deployer.sequential.completion_latency",
        lambda d: f"p50 {_fmt(d['p50_ms'])} ms, p99 {_fmt(d['p99_ms'])} ms",
    )
    row(
        "sequential promotes: whole promote stream",
        "deployer.sequential.promote_wall",
        lambda d: f"p50 {_fmt(d['p50_ms'])} ms, p99 {_fmt(d['p99_ms'])} ms",
    )
    for db in ("sqlite", "postgres"):
        row(
            f"Release service start, to serving, with the seeded releases ({db})",
            f"scale.{db}.start",
            lambda s: f"{s['seconds']:.2f} s with {s['releases']:,} releases",
        )
    rep = "replicas.fan_out"
    for where, label in (("same", "the Deployer running it"), ("other", "the other Deployer")):
        row(
            f"Watch on {label}: fan-out lag p50 / p99 (PostgreSQL, 50 watchers each)",
            f"{rep}.{where}.lag_ms",
            lambda s: f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} ms",
        )
    row(
        "takeover of a killed owner's deployment (lease TTL)",
        "replicas.takeover",
        lambda t: f"{t['takeover_s']:.2f} s (TTL {t['lease_ttl_s']:g} s)",
    )
    w = "deployer.watchers"
    row(
        "1000 watchers: streams with every event / events per deployment",
        w,
        lambda d: f"{d['complete']} / {d['last_seq']}",
    )
    row(
        "1000 watchers: live / replayed events received",
        w,
        lambda d: f"{d['live_events_received']} / {d['replayed_events_received']}",
    )
    row("1000 watchers: deployment duration", f"{w}.deployment_s", lambda x: f"{x:.2f} s")
    row(
        "1000 watchers: completion latency (backend done -> promoting client)",
        f"{w}.completion_latency_ms",
        lambda x: f"{_fmt(x)} ms",
    )
    for svc in ("release", "deployer"):
        row(
            f"{svc} RSS idle",
            f"deployer.memory_idle_kib.{svc}.VmRSS",
            lambda x: f"{x / 1024:.1f} MiB",
        )
        row(
            f"{svc} RSS peak under 200 promotes",
            f"{dep}.memory_kib.peak_rss_sampled.{svc}",
            lambda x: f"{x / 1024:.1f} MiB",
        )
    for tree in ("source", "tiny"):
        row(
            f"packaging 10,000 files ({tree}): relman / tar czf",
            f"packaging.{tree}",
            lambda d: f"wall p50 {d['ours']['wall_p50_s']:.3f} s / {d['tar']['wall_p50_s']:.3f} s"
            f" ({d['wall_ratio']:.2f}x), CPU p50 {d['ours']['cpu_p50_s']:.3f} s / "
            f"{d['tar']['cpu_p50_s']:.3f} s ({d['cpu_ratio']:.2f}x); {d['bytes'] / 1e6:.1f} MB "
            f"-> {d['archive_bytes'] / 1e6:.1f} MB",
        )
    row(
        "source upload: relman / raw client-stream floor",
        "uploads.throughput",
        lambda d: f"{d['relman_mb_per_s']:.0f} MB/s / {d['floor_mb_per_s']:.0f} MB/s "
        f"({d['ratio_of_floor']:.2f}x) for {d['archive_bytes'] / 1e6:.0f} MB",
    )
    row(
        "Release service RSS through a 500 MB upload",
        "uploads.memory",
        lambda d: f"+{d['growth_mib']:.1f} MiB (peak {d['peak_rss_after_kib'] / 1024:.1f} MiB)",
    )
    row(
        "`relman build` of a 50 MB tree, then again unchanged",
        "uploads.second_build",
        lambda d: f"{d['first_wall_s']:.2f} s, then {d['second_wall_s']:.2f} s; uploads "
        f"{d['upload_calls'][0]} then {d['upload_calls'][1]}; same digest: {d['same_digest']}",
    )
    for db in ("sqlite", "postgres"):
        for size, d in r.get("scale", {}).get(db, {}).items():
            if size == "skipped":
                rows += [
                    [f"list at {s} releases ({db})", f"skipped: {why}"] for s, why in d.items()
                ]
            elif "seed_s" in d:
                rows.append([f"seed {size} releases ({db})", f"{d['seed_s']:.1f} s"])
    return rows


METHOD_NOTES = [
    "Percentiles from sorted samples (statistics.quantiles, inclusive); warm-up calls excluded.",
    "Unary: closed-loop clients, one channel each, in one asyncio process; throughput = "
    "measured calls / wall time of the measured phase.",
    "Floors and services run as separate processes on loopback; the echo server speaks "
    "relman's own protos and is driven by the same client code.",
    "Release writes: each client works on its own app; on SQLite all writers share one lock. "
    "Their floors (echo with the same calls, durable inserts with as many writers) are "
    "measured in 3 rounds in turns with the service; the Floors table is a separate run.",
    "Scale: releases bulk-inserted with the Release service's own table, then ListReleases "
    "(limit 20) through gRPC, sizes interleaved call by call; deep page = cursor halfway down. "
    "The ListReleases floor is the echo server answering a page of 20 releases of the same "
    "shape (made up, read from nothing), called in turns with the service's first pages.",
    "Env change on PostgreSQL, 8 clients on 8 apps: the floor of the same shape is the echo "
    "server (8 pooled async connections) doing, per call, one durable write transaction with "
    "the statements an env change needs: lock the app row, read the latest release's env, "
    "insert the new release, point the app at it, commit; measured in turns with the service.",
    "Fan-out lag = watcher receive time - event time (stamped by the Deployer's backend when "
    "it observed the event; same host clock). Events stamped before a stream opened are "
    "replays, counted apart. The watchers connect once the deployment has started. The floor "
    "replays the same event timeline from the echo server to the same 1,000 watchers "
    "(4 processes) through in-memory queues, its timeline starting with the first watcher "
    "(a late one gets a replay first, as from relman); a second floor starts the timeline only "
    "once all 1,000 are connected (fan-out alone, no connections during it).",
    "Completion latency = receive time of the stream's final Deployment message - time of the "
    "last backend event before `Status: Updating => Running`.",
    "200 concurrent promotes: 3 rounds (a new release of each app each round); events/s and "
    "completion latency are each the median round's, events lost are summed over the rounds. "
    "The stream floor (echo streams of the same shape) is the median of 5 runs.",
    "Memory: VmRSS from /proc/PID/status; under load = peak of 20 ms samples.",
    "The machine is shared with other work while the bench runs: see the load average.",
]


def write(results: dict[str, Any], out_dir: Path) -> tuple[str, list[Ratio], list[Target]]:
    rs, missing_r = ratios(results)
    ts, missing_t = targets(results)
    missing = missing_r + missing_t
    results["ratios"] = [{**asdict(x), "ratio": x.ratio} for x in rs]
    results["targets"] = [{**asdict(t), "met": t.met, "verdict": t.verdict()} for t in ts]
    results["not_measured"] = missing
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    md = markdown(results, rs, ts, missing)
    (out_dir / "latest.md").write_text(md)
    return md, rs, ts
