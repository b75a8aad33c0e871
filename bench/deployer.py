"""Deployer: 200 concurrent promotes, sequential promotes, and 1,000 watchers of one deployment.

- 200 concurrent promotes: 200 apps, one release each, one Deployer on the sim backend with zero
  pod delay; PROMOTE_ROUNDS rounds, each with a new release of every app. events/s = events
  received by all clients / wall time from the first Promote call to the last stream's end;
  the median round's (and the median round's completion latency). Lost events: for each
  deployment, the stored log (``GetDeployment`` last_seq and a full ``Watch`` replay) is
  compared with what its client received.
- Against the stream floor: the echo server streaming the same number of streams with the same
  number of events each (matched to what the promotes produced), same client code; the median
  of FLOOR_RUNS runs.
- Completion latency: receive time of the stream's final Deployment message minus the time of
  the last backend event before ``Status: Updating => Running`` (the backend's clock, stamped
  when it observed the last step of the rollout; same host clock as the client).
- 1,000 watchers: a second Deployer with a non-zero pod delay so that the deployment lasts
  while they watch; the watchers run in separate processes (see :mod:`bench.watchers`). They
  connect once the deployment has started, so a watcher first gets a replay of what it missed
  (counted apart), then live events. The floor replays the deployment's event timeline from the
  echo server to the same watchers, connecting the same way (the timeline starts with the
  first watcher); a second floor connects them all before the first event.
- Memory: VmRSS of both services idle, and the peak VmRSS sampled every 20 ms under the 200
  promotes (plus VmHWM).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc, types_pb2
from relman_common.lifecycle import Outcome
from relman_common.pb_enums import word
from relman_common.tokens import DEPLOYER_TOKEN_FILE

from bench.clients import TOKENS, StreamResult, channel, consume
from bench.floors import COUNTER_KEY, stream_messages_per_s
from bench.procs import REPO, ServiceProcess, loopback_addr, memory_kib
from bench.release import BASE_ENV, start_release
from bench.seed import app_with_build, apps_with_builds
from bench.stats import percentile, summarize_ms

if TYPE_CHECKING:
    from relman.v1.deployer_pb2_grpc import DeployerServiceAsyncStub

PROMOTES = 200
PROMOTE_ROUNDS = 3
FLOOR_RUNS = 5
SEQUENTIAL = 20
SEQUENTIAL_WARMUP = 3
WATCHERS = 1000
WATCHER_PROCESSES = 4
# The watched deployment: replicas rolled a few at a time, each pod ready after WATCH_POD_DELAY.
WATCH_POD_DELAY = 0.3
WATCH_REPLICAS = 6
STATUS_DONE = "Status: Updating => Running"


RELEASE_NAME = "deploy-release"


def start_deployer(workdir: Path, name: str, release_addr: str, pod_delay: float) -> ServiceProcess:
    """A Deployer of the Release service RELEASE_NAME, using that service's deployer token;
    callers use that service's admin token with it too."""
    data_dir = workdir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "--release-addr",
        release_addr,
        "--token-file",
        str(workdir / RELEASE_NAME / DEPLOYER_TOKEN_FILE),
        "--data-dir",
        str(data_dir),
        "--backend",
        "sim",
        "--sim-pod-delay",
        str(pod_delay),
    ]
    deployer = ServiceProcess("relman_deployer", args, log_path=workdir / f"{name}.log")
    deployer.start(loopback_addr())
    TOKENS[deployer.addr] = TOKENS[release_addr]
    return deployer


class RssSampler:
    """Samples VmRSS of some processes every ``interval`` s in a thread; keeps the peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.02) -> None:
        self.pids = pids
        self.interval = interval
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], memory_kib(pid).get("VmRSS", 0))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def completion_latency_s(res: StreamResult) -> float | None:
    """Final message receive time - time of the last backend event before the success status;
    None unless the deployment succeeded and the stream shows both."""
    done = [e[0] for e in res.events if e[2] == "StatusChange" and e[3] == STATUS_DONE]
    if not done or res.last is None or res.last.outcome != types_pb2.OUTCOME_SUCCEEDED:
        return None
    before = [
        t for seq, t, _recv, reason in res.received if seq < done[0] and reason != "StatusChange"
    ]
    return res.last_received_at - max(before) if before else None


async def stream_floor(echo_addr: str, events_per_stream: int) -> dict[str, Any]:
    """The echo stream floor of the promotes' shape, FLOOR_RUNS times (a run lasts a few tenths
    of a second, so one is at the mercy of the machine's other work): the median run, by
    events/s, with every run's events/s."""
    runs = [
        await stream_messages_per_s(
            echo_addr, streams=PROMOTES, events_per_stream=events_per_stream
        )
        for _ in range(FLOOR_RUNS)
    ]
    runs.sort(key=lambda run: float(run["events_per_s"]))
    return {**runs[len(runs) // 2], "runs_events_per_s": [run["events_per_s"] for run in runs]}


def _succeeded(res: StreamResult) -> bool:
    return res.last is not None and res.last.outcome == types_pb2.OUTCOME_SUCCEEDED


async def _promote(stub: DeployerServiceAsyncStub, app: str, release_id: str) -> StreamResult:
    return await consume(stub.Promote(deployer_pb2.PromoteRequest(app=app, release_id=release_id)))


async def _check_against_store(
    stub: DeployerServiceAsyncStub, results: list[StreamResult]
) -> dict[str, Any]:
    """Compare each client's events with the stored deployment and a full replay of its log."""
    sem = asyncio.Semaphore(20)
    lost = duplicates = mismatched = 0
    outcomes: dict[str, int] = {}

    async def one(res: StreamResult) -> None:
        nonlocal lost, duplicates, mismatched
        async with sem:
            stored = await stub.GetDeployment(
                deployer_pb2.GetDeploymentRequest(id=res.deployment_id)
            )
            replay = await consume(
                stub.Watch(deployer_pb2.WatchRequest(deployment_id=res.deployment_id, after_seq=0))
            )
        outcome = word(Outcome, stored.outcome) or "unspecified"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        got = set(res.seqs)
        lost += sum(1 for s in range(1, stored.last_seq + 1) if s not in got)
        duplicates += len(res.seqs) - len(got)
        if replay.events != res.events:
            mismatched += 1

    await asyncio.gather(*(one(r) for r in results))
    return {
        "events_lost": lost,
        "events_duplicated": duplicates,
        "streams_differing_from_stored_log": mismatched,
        "stored_outcomes": outcomes,
    }


async def _promote_burst(
    stub: DeployerServiceAsyncStub, releases: dict[str, str], pids: dict[str, int]
) -> dict[str, Any]:
    """One round: every app's release in ``releases`` promoted at once (timed), then what each
    client received compared with the stored log."""
    with RssSampler(pids) as rss:
        start = time.perf_counter()
        results: list[StreamResult] = await asyncio.gather(
            *(_promote(stub, app, release_id) for app, release_id in releases.items())
        )
        elapsed = time.perf_counter() - start
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(releases)} promotes failed, e.g. {errors[0]}")
    check = await _check_against_store(stub, results)
    events = sum(len(r.seqs) for r in results)
    messages = sum(r.messages for r in results)
    latencies = [x for x in (completion_latency_s(r) for r in results) if x is not None]
    walls = [r.last_received_at - r.opened_at for r in results if r.last_received_at]
    return {
        "promotes": len(results),
        "succeeded": sum(1 for r in results if _succeeded(r)),
        "events": events,
        "messages": messages,
        "elapsed_s": elapsed,
        "events_per_s": events / elapsed,
        "messages_per_s": messages / elapsed,
        **check,
        "completion_latency": summarize_ms(latencies) if latencies else None,
        "promote_wall": summarize_ms(walls),
        "peak_rss_sampled": rss.peak,
    }


def _median_round(rounds: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> Any:
    return sorted(rounds, key=key)[len(rounds) // 2]


async def concurrent_promotes(
    release_addr: str, deployer: ServiceProcess, release: ServiceProcess, echo_addr: str
) -> dict[str, Any]:
    """PROMOTE_ROUNDS rounds of PROMOTES concurrent promotes (a burst lasts about a second,
    so one is at the mercy of the machine's other work). events/s and completion latency are
    each the median round's; events lost/duplicated are summed over all rounds."""
    apps = [f"promo-{i}" for i in range(PROMOTES)]
    warm = [f"warm-{i}" for i in range(5)]
    # Every round's releases first (each round promotes a newer release of every app), so that
    # no round follows a burst of seeding writes.
    releases: list[dict[str, str]] = []
    for _ in range(PROMOTE_ROUNDS):
        seeded = await apps_with_builds(release_addr, apps, env=BASE_ENV, count=2)
        releases.append({app: seeded[app].release.id for app in apps})
    seeded = await apps_with_builds(release_addr, warm, env=BASE_ENV, count=2)
    pids = {"release": release.pid, "deployer": deployer.pid}
    async with channel(deployer.addr) as ch:
        stub = deployer_pb2_grpc.DeployerServiceStub(ch)
        for app in warm:  # warm-up, not measured
            res = await _promote(stub, app, seeded[app].release.id)
            if res.error:
                raise RuntimeError(f"warm-up promote of {app} failed: {res.error}")
        rounds = [await _promote_burst(stub, round_releases, pids) for round_releases in releases]
    by_rate = _median_round(rounds, lambda r: float(r["events_per_s"]))
    by_latency = _median_round(rounds, lambda r: float(r["completion_latency"]["p50_ms"]))
    per_stream = round(by_rate["events"] / by_rate["promotes"])
    floor = await stream_floor(echo_addr, per_stream)
    outcomes: dict[str, int] = {}
    for r in rounds:
        for outcome, n in r["stored_outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    return {
        **by_rate,
        "rounds": len(rounds),
        "rounds_events_per_s": [r["events_per_s"] for r in rounds],
        "rounds_completion_p50_ms": [r["completion_latency"]["p50_ms"] for r in rounds],
        "succeeded": min(r["succeeded"] for r in rounds),
        "events_lost": sum(r["events_lost"] for r in rounds),
        "events_duplicated": sum(r["events_duplicated"] for r in rounds),
        "streams_differing_from_stored_log": sum(
            r["streams_differing_from_stored_log"] for r in rounds
        ),
        "stored_outcomes": outcomes,
        "completion_latency": by_latency["completion_latency"],
        "stream_floor_matched": floor,
        "memory_kib": {
            "peak_rss_sampled": {
                name: max(r["peak_rss_sampled"][name] for r in rounds) for name in pids
            },
            "release": memory_kib(release.pid),
            "deployer": memory_kib(deployer.pid),
        },
    }


async def sequential_promotes(release_addr: str, deployer_addr: str) -> dict[str, Any]:
    """One promote at a time on one app (each of a fresh env change): unloaded latencies."""
    app = "sequential"
    async with channel(release_addr) as rch, channel(deployer_addr) as dch:
        rstub = release_pb2_grpc.ReleaseServiceStub(rch)
        dstub = deployer_pb2_grpc.DeployerServiceStub(dch)
        await app_with_build(rstub, app, env=BASE_ENV, count=2)
        walls: list[float] = []
        completions: list[float] = []
        for i in range(SEQUENTIAL_WARMUP + SEQUENTIAL):
            change = await rstub.ChangeEnv(
                release_pb2.ChangeEnvRequest(app=app, set={COUNTER_KEY: str(i)})
            )
            res = await _promote(dstub, app, change.release.id)
            latency = completion_latency_s(res)
            if res.error or latency is None:
                raise RuntimeError(
                    f"sequential promote {i} did not succeed: {res.error or res.last}"
                )
            if i >= SEQUENTIAL_WARMUP:
                walls.append(res.last_received_at - res.opened_at)
                completions.append(latency)
    return {"promote_wall": summarize_ms(walls), "completion_latency": summarize_ms(completions)}


class WatcherPool:
    """WATCHERS watch streams spread over WATCHER_PROCESSES processes (bench.watchers)."""

    def __init__(self, addr: str) -> None:
        per_proc = WATCHERS // WATCHER_PROCESSES
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.watchers",
                    "--addr",
                    addr,
                    "--streams",
                    str(per_proc),
                    "--token",
                    TOKENS.get(addr, ""),
                ],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(WATCHER_PROCESSES)
        ]

    async def ready(self) -> None:
        for proc in self.procs:
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError(f"watcher process said {line!r}")

    def go(self, deployment_id: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(deployment_id + "\n")
            proc.stdin.flush()

    async def results(self) -> dict[str, Any]:
        outputs = await asyncio.gather(
            *(asyncio.to_thread(p.communicate, None, 180) for p in self.procs)
        )
        summaries = [json.loads(out.strip().splitlines()[-1]) for out, _err in outputs]
        fatal = [s["fatal"] for s in summaries if "fatal" in s]
        if fatal:
            raise RuntimeError(f"watcher process failed: {fatal[0]}")
        lags = [lag for s in summaries for lag in s["lags_ms"]]
        result: dict[str, Any] = {
            "watchers": sum(s["streams"] for s in summaries),
            "complete": sum(s["complete"] for s in summaries),
            "error_count": sum(s["error_count"] for s in summaries),
            "errors": [e for s in summaries for e in s["errors"]][:5],
            "watcher_last_seqs": sorted({x for s in summaries for x in s["last_seqs"]}),
            "live_events_received": len(lags),
            "replayed_events_received": sum(s["replayed"] for s in summaries),
            "open_spread_s": max(s["opened_last"] for s in summaries)
            - min(s["opened_first"] for s in summaries),
        }
        if lags:
            result["fanout_lag_ms"] = {
                "n": len(lags),
                "p50_ms": percentile(lags, 50),
                "p99_ms": percentile(lags, 99),
                "max_ms": max(lags),
            }
        return result

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def watchers(workdir: Path, release_addr: str, echo_addr: str) -> dict[str, Any]:
    """1,000 watchers of one deployment on a Deployer whose pods take WATCH_POD_DELAY s; then
    the fan-out floor: the echo server replaying the same event timeline to 1,000 watchers."""
    deployer = start_deployer(workdir, "deployer-watch", release_addr, WATCH_POD_DELAY)
    pool: WatcherPool | None = None
    try:
        app = "watched"
        async with channel(release_addr) as rch, channel(deployer.addr) as dch:
            rstub = release_pb2_grpc.ReleaseServiceStub(rch)
            dstub = deployer_pb2_grpc.DeployerServiceStub(dch)
            first = await app_with_build(
                rstub, app, env=BASE_ENV, count=WATCH_REPLICAS, minimum=100, maximum=150
            )
            await _promote(dstub, app, first.release.id)
            change = await rstub.ChangeEnv(
                release_pb2.ChangeEnvRequest(app=app, set={COUNTER_KEY: "watched"})
            )
            pool = WatcherPool(deployer.addr)
            await pool.ready()
            request = deployer_pb2.PromoteRequest(app=app, release_id=change.release.id)
            stream = dstub.Promote(request).__aiter__()
            promoter = StreamResult(opened_at=time.time())
            promoter.first = (await stream.__anext__()).deployment
            pool.go(promoter.first.id)
            await consume(stream, promoter)
            result = await pool.results()
    finally:
        if pool is not None:
            pool.kill()
        deployer.stop()
    last_seq = promoter.last.last_seq if promoter.last is not None else 0
    result.update(
        {
            "last_seq": last_seq,
            "deployment_events": len(promoter.seqs),
            "deployment_s": promoter.last_received_at - promoter.opened_at,
            "pod_delay_s": WATCH_POD_DELAY,
            "replicas": WATCH_REPLICAS,
        }
    )
    latency = completion_latency_s(promoter)
    result["completion_latency_ms"] = latency * 1000 if latency is not None else None
    # The floors: the same events at the same offsets, fanned out by the bare echo server, with
    # the watchers connecting while the events flow (as they met the deployment: the floor of
    # the target), and with every watcher connected before the first event (fan-out alone).
    t0 = promoter.received[0][1]
    timeline = ",".join(str(round((t - t0) * 1000)) for _seq, t, _r, _reason in promoter.received)
    for key, mode in (("floor", "fanout"), ("floor_all_subscribed", "fanout-all")):
        floor_pool = WatcherPool(echo_addr)
        try:
            await floor_pool.ready()
            floor_pool.go(f"{mode}:{WATCHERS}:{timeline}")
            result[key] = await floor_pool.results()
        finally:
            floor_pool.kill()
    return result


async def run(workdir: Path, echo_addr: str) -> dict[str, Any]:
    release = start_release(workdir, RELEASE_NAME)
    deployer = start_deployer(workdir, "deployer", release.addr, 0.0)
    try:
        idle = {"release": memory_kib(release.pid), "deployer": memory_kib(deployer.pid)}
        out: dict[str, Any] = {"memory_idle_kib": idle}
        out["concurrent"] = await concurrent_promotes(release.addr, deployer, release, echo_addr)
        out["sequential"] = await sequential_promotes(release.addr, deployer.addr)
        out["watchers"] = await watchers(workdir, release.addr, echo_addr)
        return out
    finally:
        deployer.stop()
        release.stop()
