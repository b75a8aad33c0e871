"""Deployer: 200 concurrent promotes, sequential promotes, and 1,000 watchers of one deployment.

- 200 concurrent promotes: 200 apps, one release each, one Deployer on the sim backend with zero
  pod delay. events/s = events received by all clients / wall time from the first Promote call
  to the last stream's end. Lost events: for each deployment, the stored log (``GetDeployment``
  last_seq and a full ``Watch`` replay) is compared with what its client received.
- Against the stream floor: the echo server streaming the same number of streams with the same
  number of events each (matched to what the promotes produced), same client code.
- Completion latency: receive time of the stream's final Deployment message minus the time of
  the last backend event before ``Status: Updating => Running`` (the backend's clock, stamped
  when it observed the last step of the rollout; same host clock as the client).
- 1,000 watchers: a second Deployer with a non-zero pod delay so that the deployment lasts
  while they watch; the watchers run in separate processes (see :mod:`bench.watchers`).
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
from pathlib import Path
from typing import Any

from relman.v1 import deployer_pb2, deployer_pb2_grpc, release_pb2, release_pb2_grpc
from relman_common.tokens import DEPLOYER_TOKEN_FILE

from bench.clients import TOKENS, StreamResult, channel, consume
from bench.floors import COUNTER_KEY, stream_messages_per_s
from bench.procs import REPO, ServiceProcess, loopback_addr, memory_kib
from bench.release import BASE_ENV, start_release
from bench.seed import app_with_build, apps_with_builds
from bench.stats import percentile, summarize_ms

PROMOTES = 200
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
    if not done or res.last is None or res.last.outcome != "succeeded":
        return None
    before = [
        t for seq, t, _recv, reason in res.received if seq < done[0] and reason != "StatusChange"
    ]
    return res.last_received_at - max(before) if before else None


async def _promote(
    stub: deployer_pb2_grpc.DeployerServiceStub, app: str, release_id: str
) -> StreamResult:
    return await consume(stub.Promote(deployer_pb2.PromoteRequest(app=app, release_id=release_id)))


async def _check_against_store(
    stub: deployer_pb2_grpc.DeployerServiceStub, results: list[StreamResult]
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
        outcomes[stored.outcome] = outcomes.get(stored.outcome, 0) + 1
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


async def concurrent_promotes(
    release_addr: str, deployer: ServiceProcess, release: ServiceProcess, echo_addr: str
) -> dict[str, Any]:
    apps = [f"promo-{i}" for i in range(PROMOTES)]
    warm = [f"warm-{i}" for i in range(5)]
    seeded = await apps_with_builds(release_addr, apps + warm, env=BASE_ENV, count=2)
    async with channel(deployer.addr) as ch:
        stub = deployer_pb2_grpc.DeployerServiceStub(ch)
        for app in warm:  # warm-up, not measured
            res = await _promote(stub, app, seeded[app].release.id)
            if res.error:
                raise RuntimeError(f"warm-up promote of {app} failed: {res.error}")
        with RssSampler({"release": release.pid, "deployer": deployer.pid}) as rss:
            start = time.perf_counter()
            results: list[StreamResult] = await asyncio.gather(
                *(_promote(stub, app, seeded[app].release.id) for app in apps)
            )
            elapsed = time.perf_counter() - start
        errors = [r.error for r in results if r.error]
        if errors:
            raise RuntimeError(f"{len(errors)} of {PROMOTES} promotes failed, e.g. {errors[0]}")
        check = await _check_against_store(stub, results)
    events = sum(len(r.seqs) for r in results)
    messages = sum(r.messages for r in results)
    per_stream = round(events / len(results))
    floor = await stream_messages_per_s(echo_addr, streams=PROMOTES, events_per_stream=per_stream)
    latencies = [x for x in (completion_latency_s(r) for r in results) if x is not None]
    walls = [r.last_received_at - r.opened_at for r in results if r.last_received_at]
    return {
        "promotes": len(results),
        "errors": errors[:5],
        "error_count": len(errors),
        "succeeded": sum(
            1 for r in results if r.last is not None and r.last.outcome == "succeeded"
        ),
        "events": events,
        "messages": messages,
        "elapsed_s": elapsed,
        "events_per_s": events / elapsed,
        "messages_per_s": messages / elapsed,
        "stream_floor_matched": floor,
        **check,
        "completion_latency": summarize_ms(latencies) if latencies else None,
        "promote_wall": summarize_ms(walls),
        "memory_kib": {
            "peak_rss_sampled": rss.peak,
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
    # The floor: the same events at the same offsets, fanned out by the bare echo server.
    t0 = promoter.received[0][1]
    timeline = ",".join(str(round((t - t0) * 1000)) for _seq, t, _r, _reason in promoter.received)
    floor_pool = WatcherPool(echo_addr)
    try:
        await floor_pool.ready()
        floor_pool.go(f"fanout:{WATCHERS}:{timeline}")
        result["floor"] = await floor_pool.results()
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
