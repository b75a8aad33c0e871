"""Deployment streams in the CLI, against a scripted Deployer on a real loopback gRPC server.

Proves: promote/rollback print the seed's lines and exit 0 only on success; a stream that
breaks (dropped connection, Deployer restart) resumes with Watch(after_seq) and shows every
event exactly once; refusals are reported at once; Ctrl-C detaches without cancelling.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import grpc
import pytest
from relman.v1 import deployer_pb2, types_pb2
from relman_cli.client import DEPLOYER_SERVICE, ServiceClient, deployer_stub
from relman_cli.errors import CliError
from relman_cli.follow import DeploymentFollower
from support.cli_run import ACTOR, RELMAN, Done, arun, cli_env
from support.helpers import free_port

from .cli_fake_deployer import SEED_PROMOTE_LINES, FakeDeployer, Script, start_server

RUNNING = types_pb2.OUTCOME_RUNNING
SUCCEEDED = types_pb2.OUTCOME_SUCCEEDED


@dataclass
class Deployer:
    fake: FakeDeployer
    port: int
    server: grpc.aio.Server

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def restart(self) -> None:
        await self.server.stop(0)
        self.server = await start_server(self.fake, self.port)


@pytest.fixture
async def deployer() -> AsyncIterator[Deployer]:
    fake = FakeDeployer()
    port = free_port()
    running = Deployer(fake, port, await start_server(fake, port))
    try:
        yield running
    finally:
        for run in fake.runs.values():
            run.held.set()
        await running.server.stop(0)


@pytest.fixture
def env(deployer: Deployer, tmp_path: Path) -> dict[str, str]:
    dead = f"127.0.0.1:{free_port()}"  # no Release service is needed here
    return cli_env({"RELMAN_DEPLOYER_ADDR": deployer.addr, "RELMAN_RELEASE_ADDR": dead}, tmp_path)


# --- the follower itself, in-process -----------------------------------------------------------


def follow_promote(
    addr: str, release_id: str, **kwargs: Any
) -> tuple[deployer_pb2.Deployment | None, list[int], DeploymentFollower]:
    """Promote through a real channel and follow it; returns (final, event seqs, follower)."""
    client = ServiceClient(DEPLOYER_SERVICE, addr, deployer_stub)
    seqs: list[int] = []

    def watch(deployment_id: str, after_seq: int) -> Iterator[deployer_pb2.DeploymentUpdate]:
        request = deployer_pb2.WatchRequest(deployment_id=deployment_id, after_seq=after_seq)
        return client.stream(lambda stub: stub.Watch, request)

    follower = DeploymentFollower(
        watch, client.error, lambda e: seqs.append(e.seq), first_backoff=0.01, **kwargs
    )
    request = deployer_pb2.PromoteRequest(app="myapp", release_id=release_id)
    try:
        final = follower.follow(client.stream(lambda stub: stub.Promote, request))
    finally:
        client.close()
    return final, seqs, follower


async def test_dropped_stream_resumes_without_gaps_or_duplicates(deployer: Deployer) -> None:
    deployer.fake.scripts["RDROPPEDXXX"] = Script(drop_before={3, 7})
    final, seqs, follower = await asyncio.to_thread(follow_promote, deployer.addr, "RDROPPEDXXX")
    assert seqs == list(range(1, 10))
    assert final is not None and final.outcome == SUCCEEDED
    deployment_id = deployer.fake.only_run().deployment.id
    assert deployer.fake.watches == [(deployment_id, 2), (deployment_id, 6)]
    assert follower.seen.reconnects == 2


async def test_stream_resumes_across_a_deployer_restart(deployer: Deployer) -> None:
    deployer.fake.scripts["RRESTARTXXX"] = Script(hold_after=4)
    following = asyncio.create_task(asyncio.to_thread(follow_promote, deployer.addr, "RRESTARTXXX"))
    await _until_started(deployer.fake)
    run = deployer.fake.only_run()
    await asyncio.wait_for(deployer.fake.wait_sent(run.deployment.id, 4), 30)
    await deployer.restart()  # every open stream breaks
    deployer.fake.release_hold(run.deployment.id)
    final, seqs, follower = await asyncio.wait_for(following, 60)
    assert seqs == list(range(1, 10))
    assert final is not None and final.outcome == SUCCEEDED
    assert follower.seen.reconnects >= 1
    assert all(after == 4 for _, after in deployer.fake.watches)


async def test_refusal_is_reported_at_once_without_reconnecting(deployer: Deployer) -> None:
    with pytest.raises(CliError, match=r"^can not promote an older release, try rollback$"):
        await asyncio.to_thread(follow_promote, deployer.addr, "RREFUSEDXXX")
    assert deployer.fake.watches == []


async def test_follower_gives_up_when_the_deployer_stays_away(deployer: Deployer) -> None:
    deployer.fake.scripts["RGONEXXXXXX"] = Script(hold_after=4)
    ticks = count(step=10)  # each look at the clock is 10 s later: no real waiting
    following = asyncio.create_task(
        asyncio.to_thread(
            follow_promote,
            deployer.addr,
            "RGONEXXXXXX",
            reconnect_for=30.0,
            sleep=lambda _s: None,
            clock=lambda: float(next(ticks)),
        )
    )
    await _until_started(deployer.fake)
    run = deployer.fake.only_run()
    await asyncio.wait_for(deployer.fake.wait_sent(run.deployment.id, 4), 30)
    await deployer.server.stop(0)
    with pytest.raises(CliError) as err:
        await asyncio.wait_for(following, 60)
    assert str(err.value).startswith(
        f"lost the deployment stream of {run.deployment.id} after event 4 ("
    )


async def _until_started(fake: FakeDeployer) -> None:
    await asyncio.wait_for(fake.wait_started(), 30)


# --- the installed relman command -------------------------------------------------------------


async def test_promote_prints_the_seed_lines_then_ok(
    deployer: Deployer, env: dict[str, str]
) -> None:
    done = await arun(["releases", "promote", "RCDEFGHIJKL", "-a", "myapp"], env)
    assert (done.code, done.err) == (0, "")
    assert done.lines == ["Promoting RCDEFGHIJKL...", *SEED_PROMOTE_LINES, "OK"]
    request = deployer.fake.requests[0]
    assert isinstance(request, deployer_pb2.PromoteRequest)
    assert (request.app, request.release_id, request.force) == ("myapp", "RCDEFGHIJKL", False)
    assert deployer.fake.actors == [ACTOR]


async def test_promote_passes_force_and_timeout(deployer: Deployer, env: dict[str, str]) -> None:
    args = ["releases", "promote", "RCDEFGHIJKL", "--force", "--timeout", "90", "-a", "myapp"]
    assert (await arun(args, env)).code == 0
    request = deployer.fake.requests[0]
    assert isinstance(request, deployer_pb2.PromoteRequest)
    assert (request.force, request.timeout_seconds) == (True, 90)


async def test_promote_over_a_flaky_connection_shows_each_event_once(
    deployer: Deployer, env: dict[str, str]
) -> None:
    deployer.fake.scripts["RFLAKYXXXXX"] = Script(drop_before={1, 5, 9})
    done = await arun(["releases", "promote", "RFLAKYXXXXX", "-a", "myapp"], env)
    assert (done.code, done.err) == (0, "")
    assert done.lines == ["Promoting RFLAKYXXXXX...", *SEED_PROMOTE_LINES, "OK"]
    assert len(deployer.fake.watches) == 3


async def test_promote_of_the_latest_release_names_it_from_the_stream(
    deployer: Deployer, env: dict[str, str]
) -> None:
    done = await arun(["releases", "promote", "-a", "myapp"], env)
    assert done.code == 0
    assert done.lines[0] == "Promoting RLATESTXXXX..."
    assert done.lines[-1] == "OK"


async def test_promote_that_rolls_back_prints_events_then_fails(
    deployer: Deployer, env: dict[str, str]
) -> None:
    reason = "pods of web crash-looping (BackOff 3 times); rolled back to RPREVIOUSXX"
    deployer.fake.scripts["RBADBADBADX"] = Script(
        events=[(49, "system/k8s/atom/app", "StatusChange", "Status: Running => Pending")],
        outcome=types_pb2.OUTCOME_ROLLED_BACK,
        reason=reason,
    )
    done = await arun(["releases", "promote", "RBADBADBADX", "-a", "myapp"], env)
    deployment_id = deployer.fake.only_run().deployment.id
    assert done.code == 1
    assert done.lines == [
        "Promoting RBADBADBADX...",
        "2019-01-01T00:00:49Z system/k8s/atom/app Status: Running => Pending",
    ]
    assert done.err == f"ERROR: deployment {deployment_id} rolled back: {reason}\n"


async def test_refused_promote_says_why(deployer: Deployer, env: dict[str, str]) -> None:
    done = await arun(["releases", "promote", "RREFUSEDXXX", "-a", "myapp"], env)
    assert done.code == 1
    assert done.err == "ERROR: can not promote an older release, try rollback\n"


async def test_rollback_names_the_copy_then_streams(
    deployer: Deployer, env: dict[str, str]
) -> None:
    done = await arun(["releases", "rollback", "RBCDEFGHIJK", "-a", "myapp"], env)
    assert (done.code, done.err) == (0, "")
    assert done.lines == [
        "Rolling back to RBCDEFGHIJK... OK, RDEFGHIJKLM",
        *SEED_PROMOTE_LINES,
        "OK",
    ]
    request = deployer.fake.requests[0]
    assert isinstance(request, deployer_pb2.RollbackRequest)
    assert (request.app, request.release_id) == ("myapp", "RBCDEFGHIJK")


async def test_ctrl_c_detaches_and_the_deployment_goes_on(
    deployer: Deployer, env: dict[str, str]
) -> None:
    deployer.fake.scripts["RLONGXXXXXX"] = Script(hold_after=3)
    proc = await asyncio.create_subprocess_exec(
        str(RELMAN),
        "releases",
        "promote",
        "RLONGXXXXXX",
        "-a",
        "myapp",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    seen = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode() for _ in range(4)]
    assert seen == ["Promoting RLONGXXXXXX...\n", *(line + "\n" for line in SEED_PROMOTE_LINES[:3])]
    proc.send_signal(signal.SIGINT)
    err = (await asyncio.wait_for(proc.stderr.read(), 30)).decode()
    assert await asyncio.wait_for(proc.wait(), 30) == 130
    run = deployer.fake.only_run()
    deployment_id = run.deployment.id
    assert err == (
        f"Detached; deployment {deployment_id} goes on. "
        f"Follow it with: relman deployments logs {deployment_id} --follow -a myapp\n"
    )
    assert run.deployment.outcome == RUNNING
    assert not any(isinstance(r, deployer_pb2.CancelRequest) for r in deployer.fake.requests)


async def test_deployments_list_info_and_logs(deployer: Deployer, env: dict[str, str]) -> None:
    assert (await arun(["releases", "promote", "RCDEFGHIJKL", "-a", "myapp"], env)).code == 0
    deployment_id = deployer.fake.only_run().deployment.id

    listed = await arun(["deployments", "-a", "myapp"], env)
    assert listed.code == 0
    row = re.fullmatch(
        rf"{deployment_id}  RCDEFGHIJKL  succeeded  {ACTOR}  (.+ ago) +(.+ ago)",
        listed.lines[1],
    )
    assert row, listed.lines
    started_width = max(len("STARTED"), len(row.group(1)))
    assert listed.lines[0] == (
        "ID           RELEASE      OUTCOME    ACTOR       "
        + "STARTED".ljust(started_width)
        + "  ENDED"
    )
    assert listed.lines[1].rindex(row.group(2)) == listed.lines[0].index("ENDED")

    info = await arun(["deployments", "info", deployment_id, "-a", "myapp"], env)
    assert info.code == 0
    assert info.lines == [
        f"Id        {deployment_id}",
        "App       myapp",
        "Kind      promote",
        "Release   RCDEFGHIJKL",
        "Previous  RPREVIOUSXX",
        "Outcome   succeeded",
        "Reason",
        f"Actor     {ACTOR}",
        "Started   2019-01-01T00:00:00Z",
        "Ended     2019-01-01T00:01:00Z",
        "Events    9",
    ]

    logs = await arun(["deployments", "logs", deployment_id, "-a", "myapp"], env)
    assert (logs.code, logs.lines) == (0, SEED_PROMOTE_LINES)
    followed = await arun(["deployments", "logs", deployment_id, "--follow", "-a", "myapp"], env)
    assert (followed.code, followed.lines) == (0, [*SEED_PROMOTE_LINES, "OK"])

    as_json = await arun(["deployments", "-a", "myapp", "-o", "json"], env)
    assert json.loads(as_json.out)[0]["id"] == deployment_id
    events = await arun(["deployments", "logs", deployment_id, "-o", "json"], env)
    parsed = [json.loads(line) for line in events.lines]
    assert [e["seq"] for e in parsed] == [str(n) for n in range(1, 10)]  # int64 → string


async def test_the_largest_page_is_asked_for_as_given(
    deployer: Deployer, env: dict[str, str]
) -> None:
    assert (await arun(["releases", "promote", "RCDEFGHIJKL", "-a", "myapp"], env)).code == 0
    listed = await arun(["deployments", "list", "--limit", "1000", "-a", "myapp"], env)
    assert (listed.code, listed.err, len(listed.lines)) == (0, "", 2)
    request = deployer.fake.requests[-1]
    assert isinstance(request, deployer_pb2.ListDeploymentsRequest)
    assert (request.app, request.limit) == ("myapp", 1000)


async def test_logs_without_follow_stop_at_what_is_written(
    deployer: Deployer, env: dict[str, str]
) -> None:
    deployer.fake.scripts["RLONGXXXXXX"] = Script(hold_after=3)
    started = asyncio.create_task(arun(["releases", "promote", "RLONGXXXXXX", "-a", "x"], env))
    await _until_started(deployer.fake)
    run = deployer.fake.only_run()
    await asyncio.wait_for(deployer.fake.wait_sent(run.deployment.id, 3), 30)
    logs = await arun(["deployments", "logs", run.deployment.id], env)
    assert (logs.code, logs.lines) == (0, SEED_PROMOTE_LINES[:3])
    deployer.fake.release_hold(run.deployment.id)
    assert (await started).code == 0


async def test_cancel_turns_the_running_deployment_into_a_failure(
    deployer: Deployer, env: dict[str, str]
) -> None:
    deployer.fake.scripts["RLONGXXXXXX"] = Script(hold_after=3)
    promoting = asyncio.create_task(arun(["releases", "promote", "RLONGXXXXXX", "-a", "x"], env))
    await _until_started(deployer.fake)
    cancelled = await arun(["apps", "cancel", "-a", "x"], env)
    assert (cancelled.code, cancelled.out) == (0, "Cancelling deployment of x... OK\n")
    done: Done = await promoting
    deployment_id = deployer.fake.only_run().deployment.id
    assert done.code == 1
    assert done.err == f"ERROR: deployment {deployment_id} was cancelled: cancelled by {ACTOR}\n"


async def test_unreachable_deployer_is_named(env: dict[str, str]) -> None:
    """After retrying for RELMAN_RETRY_SECONDS (here 1 s): the promote never started."""
    addr = f"127.0.0.1:{free_port()}"
    done = await arun(
        ["releases", "promote", "RCDEFGHIJKL", "-a", "myapp"],
        {**env, "RELMAN_DEPLOYER_ADDR": addr, "RELMAN_RETRY_SECONDS": "1"},
    )
    assert done.code == 1
    assert done.err == (
        f"ERROR: cannot reach the Deployer at {addr} (is it running? try: make run)\n"
    )


# --- the follower with scripted streams, no network ---------------------------------------------


def _deployment(outcome: types_pb2.Outcome.ValueType) -> deployer_pb2.DeploymentUpdate:
    d = deployer_pb2.Deployment(id="DSCRIPTEDXX", release_id="RSCRIPTEDXX", outcome=outcome)
    return deployer_pb2.DeploymentUpdate(deployment=d)


def _event(seq: int) -> deployer_pb2.DeploymentUpdate:
    event = deployer_pb2.DeploymentEvent(deployment_id="DSCRIPTEDXX", seq=seq, message=f"e{seq}")
    return deployer_pb2.DeploymentUpdate(event=event)


def test_a_stream_that_ends_mid_deployment_is_resumed_and_replays_are_skipped() -> None:
    watches: list[tuple[str, int]] = []

    def watch(deployment_id: str, after_seq: int) -> Iterator[deployer_pb2.DeploymentUpdate]:
        watches.append((deployment_id, after_seq))
        # A server that replays one event too many must not make the user see it twice.
        return iter([_deployment(RUNNING), _event(2), _event(3), _deployment(SUCCEEDED)])

    seqs: list[int] = []
    follower = DeploymentFollower(
        watch, lambda e: CliError(str(e)), lambda e: seqs.append(e.seq), sleep=lambda _s: None
    )
    final = follower.follow(iter([_deployment(RUNNING), _event(1), _event(2)]))
    assert final is not None and final.outcome == SUCCEEDED
    assert seqs == [1, 2, 3]
    assert watches == [("DSCRIPTEDXX", 2)]


def test_a_stream_that_ends_before_naming_a_deployment_is_not_resumed() -> None:
    def watch(deployment_id: str, after_seq: int) -> Iterator[deployer_pb2.DeploymentUpdate]:
        raise AssertionError("nothing to watch")

    follower = DeploymentFollower(watch, lambda e: CliError(str(e)), lambda e: None)
    assert follower.follow(iter([])) is None


def test_follow_can_stop_at_a_given_event_of_a_running_deployment() -> None:
    def watch(deployment_id: str, after_seq: int) -> Iterator[deployer_pb2.DeploymentUpdate]:
        raise AssertionError("not needed")

    seqs: list[int] = []
    follower = DeploymentFollower(
        watch, lambda e: CliError(str(e)), lambda e: seqs.append(e.seq), stop_after_seq=2
    )
    stream = iter([_deployment(RUNNING), _event(1), _event(2), _event(3)])
    final = follower.follow(stream)
    assert final is not None and final.outcome == RUNNING
    assert seqs == [1, 2]
