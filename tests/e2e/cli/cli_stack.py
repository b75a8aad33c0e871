"""Both services as real processes, started as ``make run`` starts them, for the CLI's tests.

Authentication is on: the Release service writes ``admin.token`` and ``deployer.token`` to its
data dir on its first start; the Deployer (with a data dir of its own) reads its service token
from there through ``--token-file``; the CLI finds the admin token through ``RELMAN_DATA_DIR``
with nothing else configured. With ``pki`` both services serve TLS and the CLI trusts their CA
through ``RELMAN_TLS_CA``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relman_common.tls import ClientTls
from support.cli_run import Done, cli_env, run
from support.helpers import ServiceProcess, free_port, read_token

MANIFEST = "services:\n  web:\n    build: .\n    command: bin/web\n    port: 5000\n"


@dataclass
class Stack:
    release: ServiceProcess
    deployer: ServiceProcess
    env: dict[str, str]
    cwd: Path
    data_dir: Path  # the Release service's

    def relman(self, *args: str) -> tuple[int, list[str], str]:
        done = self.run(*args)
        return done.code, done.lines, done.err

    def run(self, *args: str, env: dict[str, str] | None = None) -> Done:
        return run(list(args), {**self.env, **(env or {})}, cwd=self.cwd, timeout=120)

    @property
    def admin_token(self) -> str:
        return read_token(self.data_dir)

    def stop(self) -> None:
        self.deployer.stop()
        self.release.stop()


def _server_tls_args(pki: Any) -> list[str]:
    return ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]


def deployer_process(
    tmp: Path, addr: str, release_addr: str, pod_delay: str, pki: Any = None
) -> ServiceProcess:
    args = [
        "--addr",
        addr,
        "--release-addr",
        release_addr,
        "--data-dir",
        str(tmp / "deployer"),
        "--token-file",
        str(tmp / "release" / "deployer.token"),
        "--sim-pod-delay",
        pod_delay,
    ]
    env = {"RELMAN_AUTH": "on"}
    if pki is not None:
        args += _server_tls_args(pki)
        env["RELMAN_TLS_CA"] = str(pki.ca)  # to reach the Release service
    return ServiceProcess(
        "relman_deployer",
        args,
        env=env,
        log_path=tmp / "deployer.log",
        tls=ClientTls(ca=pki.ca) if pki is not None else None,
    )


def start_stack(tmp: Path, pod_delay: str, pki: Any = None) -> Stack:
    release_addr = f"127.0.0.1:{free_port()}"
    deployer_addr = f"127.0.0.1:{free_port()}"
    args = ["--addr", release_addr, "--data-dir", str(tmp / "release")]
    if pki is not None:
        args += _server_tls_args(pki)
    tls = ClientTls(ca=pki.ca) if pki is not None else None
    release = ServiceProcess(
        "relman_release",
        args,
        env={"RELMAN_AUTH": "on"},
        log_path=tmp / "release.log",
        tls=tls,
    ).start(release_addr)
    deployer = deployer_process(tmp, deployer_addr, release_addr, pod_delay, pki)
    deployer.start(deployer_addr)
    (tmp / "convox.yml").write_text(MANIFEST)
    extra = {
        "RELMAN_RELEASE_ADDR": release_addr,
        "RELMAN_DEPLOYER_ADDR": deployer_addr,
        "RELMAN_DATA_DIR": str(tmp / "release"),
    }
    if pki is not None:
        extra["RELMAN_TLS_CA"] = str(pki.ca)
    return Stack(release, deployer, cli_env(extra, tmp), tmp, tmp / "release")
