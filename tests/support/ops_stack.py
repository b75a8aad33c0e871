"""Both services as real processes for the operations tests (SPEC 9): on the embedded default
(SQLite in the data dirs) or on one PostgreSQL database both share, driven through the
installed ``relman`` command as a user would.

``Stack.release`` can be killed (``kill9``) and started again on the same address and data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.cli_run import Done, cli_env, run
from support.helpers import ServiceProcess, free_port

DB_KINDS = ["embedded", "postgres"]
TESTS = Path(__file__).resolve().parents[1]
MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"


@dataclass
class Stack:
    tmp: Path
    database_url: str  # "" on the embedded default
    release_env: dict[str, str] = field(default_factory=dict)
    release: ServiceProcess | None = None
    deployer: ServiceProcess | None = None
    release_addr: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    deployer_addr: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")

    @property
    def data_dir(self) -> Path:
        return self.tmp / "release"

    def _db_args(self) -> list[str]:
        return ["--database-url", self.database_url] if self.database_url else []

    def start_release(self, module: str = "relman_release", **env: str) -> ServiceProcess:
        """The Release service (``module``: a test's variant of ``relman_release``, run
        with ``tests/`` on its path)."""
        args = ["--addr", self.release_addr, "--data-dir", str(self.data_dir), *self._db_args()]
        if module != "relman_release":
            env = {"PYTHONPATH": str(TESTS), **env}
        self.release = ServiceProcess(
            module,
            args,
            env={"RELMAN_AUTH": "on", **self.release_env, **env},
            log_path=self.tmp / "release.log",
        ).start(self.release_addr)
        return self.release

    def start_deployer(self, pod_delay: str = "0.02") -> ServiceProcess:
        args = [
            "--addr",
            self.deployer_addr,
            "--release-addr",
            self.release_addr,
            "--data-dir",
            str(self.tmp / "deployer"),
            "--token-file",
            str(self.data_dir / "deployer.token"),
            "--sim-pod-delay",
            pod_delay,
            *self._db_args(),
        ]
        self.deployer = ServiceProcess(
            "relman_deployer", args, env={"RELMAN_AUTH": "on"}, log_path=self.tmp / "deployer.log"
        ).start(self.deployer_addr)
        return self.deployer

    @property
    def env(self) -> dict[str, str]:
        extra = {
            "RELMAN_RELEASE_ADDR": self.release_addr,
            "RELMAN_DEPLOYER_ADDR": self.deployer_addr,
            "RELMAN_DATA_DIR": str(self.data_dir),
        }
        return cli_env(extra, self.tmp)

    def run(self, *args: str, stdin: str | None = None) -> Done:
        return run(list(args), self.env, stdin=stdin, cwd=self.tmp, timeout=120)

    def ok(self, *args: str) -> Done:
        """``relman args`` that must succeed."""
        done = self.run(*args)
        assert done.code == 0, (args, done.out, done.err)
        return done

    def stop(self) -> None:
        for process in (self.deployer, self.release):
            if process is not None:
                process.stop()


def stack_on(
    request: pytest.FixtureRequest, tmp_path: Path, pod_delay: str = "0.02", **release_env: str
) -> Iterator[Stack]:
    """A stack on the database kind of ``request.param`` (one of DB_KINDS); the simulated
    pods of its Deployer start in ``pod_delay`` seconds."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    stack = Stack(tmp_path, url, release_env=dict(release_env))
    (tmp_path / "convox.yml").write_text(MANIFEST)
    try:
        stack.start_release()
        stack.start_deployer(pod_delay)
        yield stack
    finally:
        stack.stop()


def new_release(stack: Stack, app: str, image: str = "registry/web:1") -> str:
    """Imports a build of ``image`` into ``app``; its release."""
    done = stack.ok("builds", "import", "--image", f"web={image}", "-a", app)
    return done.lines[-1].removeprefix("Release: ")
