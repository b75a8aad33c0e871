"""A process of many watchers of one deployment, for the fan-out measurement.

``python -m bench.watchers --addr A --streams N`` connects, prints ``ready``, reads a deployment
id from stdin, opens N ``Watch(deployment, after_seq=0)`` streams at once, reads each to its
end and prints one JSON line: how many streams saw exactly events 1..last_seq, and the fan-out
lag of every event received live.

Lag method: an event's ``time`` is stamped by the Deployer's backend when it observes the event
(same host, same realtime clock); the watcher notes ``time.time()`` when the message arrives.
lag = receive time - event time. Events stamped before a stream was opened are replayed from
the log, not fanned out live, and are counted apart (``replayed``), not as lag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import grpc
from relman.v1 import deployer_pb2, deployer_pb2_grpc, types_pb2

from bench.clients import TOKENS, StreamResult, channel, consume

STREAMS_PER_CONNECTION = 100


async def watch_all(addr: str, streams: int) -> dict[str, Any]:
    channels = [
        channel(addr, own_connection=True) for _ in range(-(-streams // STREAMS_PER_CONNECTION))
    ]
    try:
        await asyncio.gather(*(ch.channel_ready() for ch in channels))
        print("ready", flush=True)
        deployment_id = (await asyncio.to_thread(sys.stdin.readline)).strip()

        async def one(n: int) -> StreamResult:
            stub = deployer_pb2_grpc.DeployerServiceStub(channels[n // STREAMS_PER_CONNECTION])
            request = deployer_pb2.WatchRequest(deployment_id=deployment_id, after_seq=0)
            return await consume(stub.Watch(request))

        results = await asyncio.gather(*(one(n) for n in range(streams)))
    finally:
        for ch in channels:
            await ch.close()
    return summarize(results)


def summarize(results: list[StreamResult]) -> dict[str, Any]:
    lags_ms: list[float] = []
    replayed = 0
    complete = 0
    errors: list[str] = []
    last_seqs: set[int] = set()
    for res in results:
        last_seq = res.last.last_seq if res.last is not None else -1
        last_seqs.add(last_seq)
        if res.error:
            errors.append(res.error)
        elif (
            res.last is not None
            and res.last.outcome != types_pb2.OUTCOME_RUNNING
            and not (res.gaps_or_duplicates(last_seq))
        ):
            complete += 1
        for _seq, event_time, received_at, _reason in res.received:
            if event_time < res.opened_at:
                replayed += 1
            else:
                lags_ms.append((received_at - event_time) * 1000)
    return {
        "streams": len(results),
        "complete": complete,
        "errors": errors[:5],
        "error_count": len(errors),
        "last_seqs": sorted(last_seqs),
        "replayed": replayed,
        "lags_ms": lags_ms,
        "opened_first": min(r.opened_at for r in results),
        "opened_last": max(r.opened_at for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="many watchers of one relman deployment")
    parser.add_argument("--addr", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--token", default="", help="bearer token for the calls")
    args = parser.parse_args()
    if args.token:
        TOKENS[args.addr] = args.token
    try:
        summary = asyncio.run(watch_all(args.addr, args.streams))
    except grpc.RpcError as err:
        summary = {"fatal": str(err)}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
