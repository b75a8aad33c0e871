"""Running the installed ``relman`` executable as a user would, from tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

RELMAN = Path(sys.executable).parent / "relman"
ACTOR = "cli-tester"


@dataclass
class Done:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def git(repo: Path, *args: str) -> str:
    """``git args...`` in ``repo`` as a test's committer; its stdout, stripped."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def cli_env(extra: Mapping[str, str], home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RELMAN_") and k not in ("XDG_CONFIG_HOME", "USER", "LOGNAME")
    }
    env.update({"USER": ACTOR, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")})
    env.update(extra)
    return env


def run(
    args: list[str],
    env: Mapping[str, str],
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> Done:
    done = subprocess.run(
        [str(RELMAN), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr)


def run_on_a_terminal(args: list[str], env: Mapping[str, str], cwd: Path | None = None) -> str:
    """``relman args`` with stdout on a pseudo-terminal, as a person at a shell runs it; what
    it printed there (it must succeed)."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(RELMAN), *args],
            stdout=slave,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        os.close(master)
    return b"".join(chunks).decode().replace("\r\n", "\n")


async def arun(args: list[str], env: Mapping[str, str], limit_s: float = 60) -> Done:
    """The same, without blocking the event loop that serves the fake Deployer."""
    proc = await asyncio.create_subprocess_exec(
        str(RELMAN),
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
    )
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())
