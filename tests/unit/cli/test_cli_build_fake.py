"""``relman build`` and ``relman builds logs --follow`` against a scripted BuildService.

Only what the real service cannot be made to do on cue is here: a log stream that breaks in
the middle of a build (the CLI resumes it after the last line it showed, and shows every line
once). Everything else runs against the real services, in
tests/e2e/cli/test_cli_build_e2e.py.
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from relman.v1 import release_pb2
from support.cli_run import RELMAN, Done, cli_env, run
from support.helpers import free_port, wait_for

from .cli_fake_builds import FakeBuilds, Script, start_fake

BUILD_ID = r"B[A-Z]{10}"
SEED = ["Packaging source... OK", "Uploading source... OK", "Starting build... OK"]
MANIFEST = "services:\n  web:\n    build: .\n    port: 5000\n"


class Fake:
    def __init__(self, fake: FakeBuilds, env: dict[str, str], cwd: Path) -> None:
        self.fake = fake
        self.env = env
        self.cwd = cwd

    def relman(self, *args: str) -> Done:
        return run(list(args), self.env, cwd=self.cwd, timeout=60)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Fake]:
    builds = FakeBuilds()
    port = free_port()
    server = start_fake(builds, port)
    src = tmp_path / "src"
    src.mkdir()
    (src / "convox.yml").write_text(MANIFEST)
    (src / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    (src / "app.txt").write_text("hello\n" * 1000)
    env = cli_env({"RELMAN_RELEASE_ADDR": f"127.0.0.1:{port}", "RELMAN_APP": "myapp"}, tmp_path)
    try:
        yield Fake(builds, env, src)
    finally:
        server.stop(0)


def test_build_shows_each_log_line_once_across_broken_streams(fake: Fake) -> None:
    lines = [f"line {n}" for n in range(1, 8)]
    fake.fake.script = Script(lines=lines, drop_before={3, 6})
    done = fake.relman("build")
    assert done.code == 0, done
    assert done.lines[3:10] == lines
    assert re.fullmatch(rf"Build: {BUILD_ID}", done.lines[10]), done.lines
    # Resumed after the last line shown each time the stream broke.
    assert [after for after, follow in fake.fake.log_requests] == [0, 2, 5]


def test_builds_logs_follow_resumes_after_a_broken_stream(fake: Fake) -> None:
    lines = [f"line {n}" for n in range(1, 6)]
    fake.fake.script = Script(lines=lines, drop_before={2, 4}, hold_after=3)
    build = fake.fake.start(release_pb2.Build(app="myapp"))
    wait_for(lambda: fake.fake.runs[build.id].written >= 3, what="three lines written")
    so_far = fake.relman("builds", "logs", build.id)  # no --follow: what is written, then out
    assert (so_far.code, so_far.lines, so_far.err) == (0, lines[:3], "")
    follower = subprocess.Popen(
        [str(RELMAN), "builds", "logs", build.id, "--follow"],
        env=fake.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: len(fake.fake.log_requests) == 3, what="the follower's stream")
    fake.fake.release_hold(build.id)
    out, err = follower.communicate(timeout=60)
    assert (follower.returncode, out.splitlines(), err) == (0, lines, "")
    # Each stream broke once (before line 2, before line 4) and was resumed after the last
    # line shown.
    assert fake.fake.log_requests == [(0, False), (1, False), (0, True), (3, True)]


@pytest.mark.parametrize("command", ["build", "deploy"])
def test_ctrl_c_while_it_builds_detaches_and_the_build_goes_on(fake: Fake, command: str) -> None:
    fake.fake.script = Script(lines=["Building: web", "step 1/2", "step 2/2"], hold_after=2)
    proc = subprocess.Popen(
        [str(RELMAN), command],
        cwd=fake.cwd,
        env=fake.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen = [proc.stdout.readline() for _ in range(5)]
    assert seen == [line + "\n" for line in [*SEED, "Building: web", "step 1/2"]]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    (build_id,) = fake.fake.runs
    after = " (its release will not be promoted)" if command == "deploy" else ""
    assert (proc.returncode, out) == (130, "")
    assert err == (
        f"Detached; build {build_id} goes on{after}. "
        f"Follow it with: relman builds logs {build_id} --follow -a myapp\n"
    )
    fake.fake.release_hold(build_id)
    done = fake.relman("builds", "logs", build_id, "--follow")
    assert (done.code, done.lines) == (0, ["Building: web", "step 1/2", "step 2/2"])
