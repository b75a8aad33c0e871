"""``relman build`` and ``relman builds`` against a scripted BuildService.

Only what the real service cannot be made to do on cue is here: a log stream that breaks in
the middle (the CLI resumes it after the last line it showed), and what the CLI sends byte
for byte (an unchanged tree is not sent again; chunks of at most 1 MiB). The commands'
output against the real service is in test_cli_build_e2e.py.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_fake_builds import FakeBuilds, Script, start_fake
from cli_run import RELMAN, Done, cli_env, run
from helpers import free_port, wait_for
from relman.v1 import release_pb2

BUILD_ID = r"B[A-Z]{10}"
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


def test_an_unchanged_tree_is_not_sent_again(fake: Fake) -> None:
    first = fake.relman("build")
    second = fake.relman("build")
    assert (first.code, second.code) == (0, 0), (first, second)
    assert (
        first.lines[:3]
        == second.lines[:3]
        == [
            "Packaging source... OK",
            "Uploading source... OK",
            "Starting build... OK",
        ]
    )
    assert len(fake.fake.uploaded) == 1  # the second build sent 0 bytes: no upload at all
    sha = fake.fake.created[0].source_sha256
    assert fake.fake.created[1].source_sha256 == sha
    assert hashlib.sha256(fake.fake.sources[sha]).hexdigest() == sha


def test_a_large_tree_goes_in_chunks_of_at_most_1_mib(fake: Fake) -> None:
    (fake.cwd / "big.bin").write_bytes(hashlib.sha256(b"x").digest() * 200_000)  # 6.4 MB
    done = fake.relman("build")
    assert done.code == 0, done
    (sha,) = fake.fake.sources
    with tarfile.open(fileobj=io.BytesIO(fake.fake.sources[sha]), mode="r:gz") as tar:
        assert tar.getmember("big.bin").size == 6_400_000


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


def test_a_failed_build_read_with_follow_exits_1(fake: Fake) -> None:
    fake.fake.script = Script(lines=["Building: web", "boom"], reason="RUN is not supported")
    build = fake.fake.start(release_pb2.Build(app="myapp"))
    done = fake.relman("builds", "logs", build.id, "--follow")
    assert (done.code, done.lines) == (1, ["Building: web", "boom"])
    assert done.err == "ERROR: build failed: RUN is not supported\n"
