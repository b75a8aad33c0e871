"""Listing releases at scale: ListReleases(limit 20) for apps with 100 … 1M releases.

Seeding through the API would take longer than the whole bench, so the apps and one build
each are made through the API, the service is stopped, and the releases are bulk-inserted with
the Release service's own SQLAlchemy table (``relman_release.store.tables.ReleaseRow``) and env
codec; then the service is started again and measured through gRPC: the first page, and a deep
page (the cursor of a page about halfway down, reached by walking pages of the service's
maximum size).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relman.v1 import release_pb2, release_pb2_grpc
from relman_common.db import make_engine, normalize_url, sqlite_url
from relman_common.secretbox import SecretBox
from relman_release.store.codec import encode_env
from relman_release.store.tables import AppRow, ReleaseRow
from sqlalchemy import insert, select, update

from bench.clients import TOKENS, channel
from bench.procs import ServiceProcess, loopback_addr
from bench.release import BASE_ENV, start_release
from bench.seed import apps_with_builds
from bench.stats import summarize_ms

if TYPE_CHECKING:
    from relman.v1.release_pb2_grpc import ReleaseServiceAsyncStub

PAGE = 20
WALK_PAGE = 1000  # the Release service's maximum page size
CALLS = 200
WARMUP = 20
BATCH = 20_000
# Keep `make bench` under 10 minutes on a busy 2-core machine: see too_big_to_seed.
ALWAYS_SEED = 100_000
MAX_SEED_S = 120.0
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ECHO = "echo"  # the key of the echo floor's list timings


def label(n: int) -> str:
    """A short name for a release count.

    >>> [label(n) for n in (100, 10_000, 100_000, 1_000_000)]
    ['100', '10k', '100k', '1M']
    """
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def app_name(n: int) -> str:
    """The app holding ``n`` seeded releases.

    >>> app_name(1_000_000)
    'scale-1m'
    """
    return f"scale-{label(n).lower()}"


def seeded_id(app_index: int, i: int) -> str:
    """A release id no random id can be mistaken for: ``RZ`` + app letter + 8 base-26 digits.

    >>> seeded_id(0, 0), seeded_id(1, 27)
    ('RZAAAAAAAAA', 'RZBAAAAAABB')
    """
    digits = []
    for _ in range(8):
        i, rem = divmod(i, 26)
        digits.append(LETTERS[rem])
    if i:
        raise ValueError("seeded_id counter out of range")
    return "RZ" + LETTERS[app_index] + "".join(reversed(digits))


def bulk_insert_releases(
    url: str, data_dir: Path, app: str, app_index: int, count: int, build_id: str
) -> str:
    """Insert ``count`` releases of ``app`` (newer than anything it has), in batches of
    ``BATCH`` rows, one transaction per batch; make the last one the app's latest release.

    Each env is sealed as the service seals it, with the key in its ``data_dir``.
    """
    box = SecretBox.from_env_or_file(data_dir)
    engine = make_engine(url)
    start = datetime.now(UTC) - timedelta(seconds=count + 60)
    last_id = ""
    try:
        with engine.begin() as conn:
            app_id = conn.execute(select(AppRow.id).where(AppRow.name == app)).scalar_one()
        for lo in range(0, count, BATCH):
            rows: list[dict[str, object]] = [
                {
                    "id": seeded_id(app_index, i),
                    "app_id": app_id,
                    "build_id": build_id,
                    "env": encode_env(BASE_ENV, box, seeded_id(app_index, i)),
                    "description": f"env change:BENCH_COUNTER #{i}",
                    "created": start + timedelta(seconds=i),
                    "actor": "bench",
                    "last_deployment_id": "",
                    "last_deployment_outcome": "",
                }
                for i in range(lo, min(lo + BATCH, count))
            ]
            with engine.begin() as conn:
                conn.execute(insert(ReleaseRow), rows)
            last_id = seeded_id(app_index, min(lo + BATCH, count) - 1)
        with engine.begin() as conn:
            conn.execute(
                update(AppRow).where(AppRow.id == app_id).values(latest_release_id=last_id)
            )
    finally:
        engine.dispose()
    return last_id


async def _timed_lists(
    calls: dict[str, tuple[ReleaseServiceAsyncStub, release_pb2.ListReleasesRequest]],
) -> dict[str, list[float]]:
    """Samples of each named ListReleases call (a stub and a request of ``PAGE`` releases),
    interleaved call by call so that load elsewhere on the machine weighs on each alike."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(WARMUP + CALLS):
        for name, (stub, request) in calls.items():
            t0 = time.perf_counter()
            response = await stub.ListReleases(request)
            elapsed = time.perf_counter() - t0
            if len(response.releases) != PAGE:
                raise RuntimeError(f"{name}: a page of {PAGE} had {len(response.releases)}")
            if i >= WARMUP:
                samples[name].append(elapsed)
    return samples


def _list_request(app: str, token: str = "") -> release_pb2.ListReleasesRequest:
    return release_pb2.ListReleasesRequest(app=app, limit=PAGE, page_token=token)


async def _deep_token(stub: ReleaseServiceAsyncStub, app: str, depth: int) -> str:
    """The next_page_token after at least ``depth`` releases (bounded walk)."""
    token = ""
    seen = 0
    for _ in range(depth // WALK_PAGE + 2):
        limit = min(WALK_PAGE, depth - seen)
        request = release_pb2.ListReleasesRequest(app=app, limit=limit, page_token=token)
        response = await stub.ListReleases(request)
        seen += len(response.releases)
        token = response.next_page_token
        if seen >= depth or not token:
            break
    if not token:
        raise RuntimeError(f"{app}: no page token after {seen} releases")
    return token


async def measure_lists(
    addr: str, sizes: list[int], last_ids: dict[str, str], echo_addr: str
) -> dict[str, Any]:
    """First and deep pages of every size; the first pages in turns with the echo server's
    ListReleases (a page of the same size and shape, read from nothing): the unary floor."""
    apps = {app_name(n): n for n in sizes}
    out: dict[str, Any] = {}
    async with channel(addr) as ch, channel(echo_addr) as echo_ch:
        stub = release_pb2_grpc.ReleaseServiceStub(ch)
        echo = release_pb2_grpc.ReleaseServiceStub(echo_ch)
        deep: dict[str, str] = {}
        for app, n in apps.items():
            first = await stub.ListReleases(release_pb2.ListReleasesRequest(app=app, limit=PAGE))
            newest = first.releases[0].id
            if newest != last_ids[app]:
                raise RuntimeError(f"{app}: newest release {newest}, want the last seeded")
            got = await stub.GetRelease(release_pb2.GetReleaseRequest(app=app, id=newest))
            if dict(got.env) != BASE_ENV:
                raise RuntimeError(f"{app}: seeded release {newest} reads back env {got.env}")
            walk_t0 = time.perf_counter()
            deep[app] = await _deep_token(stub, app, max(PAGE, n // 2))
            out[label(n)] = {
                "releases": n,
                "deep_depth": max(PAGE, n // 2),
                "walk_to_deep_s": time.perf_counter() - walk_t0,
            }
        first_calls = {app: (stub, _list_request(app)) for app in apps}
        first_calls[ECHO] = (echo, _list_request(app_name(min(sizes))))
        first_pages = await _timed_lists(first_calls)
        deep_pages = await _timed_lists(
            {app: (stub, _list_request(app, t)) for app, t in deep.items()}
        )
    for app, n in apps.items():
        out[label(n)]["first_page"] = summarize_ms(first_pages[app])
        out[label(n)]["deep_page"] = summarize_ms(deep_pages[app])
    out[ECHO] = {"first_page": summarize_ms(first_pages[ECHO])}
    return out


async def run(
    workdir: Path, name: str, sizes: list[int], echo_addr: str, database_url: str = ""
) -> dict[str, Any]:
    apps = [app_name(n) for n in sizes]
    url = database_url or sqlite_url((workdir / name / "release.db").resolve())
    service = start_release(workdir, name, database_url)
    try:
        seeded = await apps_with_builds(service.addr, apps)
    finally:
        service.stop()
    seed_s: dict[str, float] = {}
    last_ids: dict[str, str] = {}
    skipped: dict[str, str] = {}
    seeded_sizes: list[int] = []
    for index, (n, app) in enumerate(zip(sizes, apps, strict=True)):
        why = too_big_to_seed(n, seeded_sizes, seed_s)
        if why:
            skipped[label(n)] = why
            continue
        t0 = time.perf_counter()
        # ImportBuild already made one release.
        last_ids[app] = await asyncio.to_thread(
            bulk_insert_releases,
            normalize_url(url),
            workdir / name,
            app,
            index,
            n - 1,
            seeded[app].build.id,
        )
        seed_s[label(n)] = time.perf_counter() - t0
        seeded_sizes.append(n)
    token = TOKENS[service.addr]
    service = ServiceProcess(service.module, service.args, service.log_path)
    # Start time with every seeded release in the database (issue 14: listening within 3 s
    # with 1M releases): from the process's spawn to its first SERVING health answer.
    started = time.perf_counter()
    service.start(loopback_addr())
    start_s = time.perf_counter() - started
    TOKENS[service.addr] = token
    try:
        result = await measure_lists(service.addr, seeded_sizes, last_ids, echo_addr)
    finally:
        service.stop()
    for key, seconds in seed_s.items():
        result[key]["seed_s"] = seconds
    result["start"] = {"seconds": start_s, "releases": sum(seeded_sizes)}
    if skipped:
        result["skipped"] = skipped
    return result


def too_big_to_seed(n: int, done: list[int], seed_s: dict[str, float]) -> str:
    """Why seeding ``n`` releases would not fit the bench's time (empty when it fits).

    Sizes up to ALWAYS_SEED always run; a bigger one runs when the largest seeded so far,
    scaled linearly, predicts at most MAX_SEED_S (walking to its deep page then takes about
    half as long again).

    >>> too_big_to_seed(1_000_000, [100_000], {"100k": 5.0})
    ''
    >>> too_big_to_seed(1_000_000, [100_000], {"100k": 25.0})
    'seeding would take about 250 s (100k took 25.0 s), more than the 120 s allowed'
    """
    if n <= ALWAYS_SEED or not done:
        return ""
    largest = max(done)
    took = seed_s[label(largest)]
    estimate = took * n / largest
    if estimate <= MAX_SEED_S:
        return ""
    return (
        f"seeding would take about {estimate:.0f} s ({label(largest)} took {took:.1f} s), "
        f"more than the {MAX_SEED_S:.0f} s allowed"
    )
