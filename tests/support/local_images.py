"""Local stand-ins for the public images the compose stack uses, built from Debian.

There is no Docker Hub where CI runs, so ``python:3.11-slim``, ``postgres:16`` and
``registry:2`` are replaced by images built here from a Debian root filesystem:

``relman-local/debian:bookworm``
    ``debootstrap --variant=minbase bookworm`` imported with ``docker import``.
``relman-local/python:3.11-slim``
    Debian's ``python3`` (3.11) and ``python3-venv``, ``python`` linked to it: what
    services/Dockerfile needs of its ``BASE``.
``relman-local/postgres:15``
    Debian's PostgreSQL 15 behind an entrypoint that does what the public image does with what
    docker-compose.yml uses: ``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB`` on the
    first start, data in ``/var/lib/postgresql/data``, port 5432, ``pg_isready`` on PATH.
``relman-local/registry:2``
    Debian's ``docker-registry`` (distribution 2.8) with the public image's config (port
    5000, storage in ``/var/lib/registry``, ``REGISTRY_*`` variables) and ``wget``.

Everything is cached outside the checkout, under ``~/.cache/relman/compose`` (or
``$XDG_CACHE_HOME/relman/compose``): the debootstrap tarball (keyed by suite, variant and
architecture) and each stand-in as a ``docker save`` archive keyed by a hash of its recipe and
of the tarball it was built on. A warm start only ``docker load``s them. Builds that fetch
packages use ``--network host`` (the private daemon's bridge reaches nothing beyond itself).

``python tests/support/local_images.py`` builds (or loads) them into the daemon at
``DOCKER_HOST`` and prints the names, for use outside the tests.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from relman_cluster.dockerd import file_lock

SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = os.environ.get("RELMAN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBIAN = f"relman-local/debian:{SUITE}"
PYTHON = "relman-local/python:3.11-slim"
POSTGRES = "relman-local/postgres:15"
REGISTRY = "relman-local/registry:2"
# Bump when a recipe's meaning changes in a way its text does not show.
RECIPE_VERSION = "1"

_APT = (
    "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
    "--no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"
)

PYTHON_DOCKERFILE = f"""\
FROM {DEBIAN}
RUN {_APT.format(packages="python3 python3-venv")} \\
 && ln -s /usr/bin/python3 /usr/local/bin/python
CMD ["python3"]
"""

POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# What the public postgres image does on a first start with an empty data directory, for the
# variables docker-compose.yml sets; then runs the command (postgres).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    createdb -U "$user" "$db"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "initialized $PGDATA: user $user, database $db"
fi
exec "$@"
"""

POSTGRES_DOCKERFILE = f"""\
FROM {DEBIAN}
RUN mkdir -p /etc/postgresql-common \\
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \\
 && {_APT.format(packages="postgresql-15 postgresql-client-15")} \\
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \\
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \\
 && chmod 700 /var/lib/postgresql/data
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
"""

REGISTRY_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
"""

REGISTRY_DOCKERFILE = f"""\
FROM {DEBIAN}
RUN {_APT.format(packages="docker-registry wget")}
COPY config.yml /etc/docker/registry/config.yml
VOLUME /var/lib/registry
EXPOSE 5000
ENTRYPOINT ["docker-registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
"""


@dataclass(frozen=True)
class StandIn:
    name: str
    dockerfile: str
    files: tuple[tuple[str, str, int], ...] = ()  # (name, text, mode) beside the Dockerfile

    def key(self, base_key: str) -> str:
        h = hashlib.sha256(f"{RECIPE_VERSION}\0{base_key}\0{self.dockerfile}".encode())
        for name, text, mode in self.files:
            h.update(f"\0{name}\0{mode}\0{text}".encode())
        return h.hexdigest()[:16]


STAND_INS = (
    StandIn(PYTHON, PYTHON_DOCKERFILE),
    StandIn(POSTGRES, POSTGRES_DOCKERFILE, (("docker-entrypoint.sh", POSTGRES_ENTRYPOINT, 0o755),)),
    StandIn(REGISTRY, REGISTRY_DOCKERFILE, (("config.yml", REGISTRY_CONFIG, 0o644),)),
)


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "relman" / "compose"


def tools_missing() -> list[str]:
    """Debian packages the stand-ins need on the host that are not installed."""
    tools = {"debootstrap": "debootstrap", "docker-compose": "docker-compose"}
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin:/usr/bin:/sbin:/bin"])
    return sorted(pkg for tool, pkg in tools.items() if shutil.which(tool, path=path) is None)


def debian_tarball(log: Callable[[str], None] = print) -> Path:
    """The cached debootstrap root filesystem as a tar; made (about a minute) when missing."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    tarball = cache_dir() / f"debian-{SUITE}-{VARIANT}-{arch}.tar"
    with file_lock(tarball.with_suffix(".lock")):
        if tarball.exists():
            return tarball
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="debootstrap-", dir=cache_dir()) as tmp:
            root = Path(tmp) / "root"
            done = subprocess.run(
                ["debootstrap", f"--variant={VARIANT}", f"--arch={arch}", SUITE, str(root), MIRROR],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
                raise RuntimeError(f"debootstrap failed ({done.returncode}):\n{tail}")
            shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
            (root / "var/cache/apt/archives/partial").mkdir(parents=True)
            partial = tarball.with_suffix(".tar.partial")
            subprocess.run(
                ["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."],
                check=True,
                timeout=300,
            )
            partial.replace(tarball)
        log(f"debootstrap {SUITE} {VARIANT}: {time.monotonic() - t0:.0f}s -> {tarball}")
        return tarball


def _docker(
    docker: list[str], env: dict[str, str], *args: str, timeout: float = 900, **kw: object
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*docker, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,  # type: ignore[call-overload]
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    return done  # type: ignore[no-any-return]


def _has_image(docker: list[str], env: dict[str, str], name: str) -> bool:
    return (
        subprocess.run(
            [*docker, "image", "inspect", name], env=env, capture_output=True, timeout=60
        ).returncode
        == 0
    )


def ensure_images(
    docker: list[str], env: dict[str, str], log: Callable[[str], None] = print
) -> dict[str, str]:
    """Make the stand-ins exist in the daemon that ``env`` points at (``DOCKER_HOST``).

    Returns {name: "loaded"|"built"|"present"}. Each stand-in is loaded from its cached
    ``docker save`` archive when there is one; otherwise it is built (the Debian base imported
    first) and saved for the next run.
    """
    tarball = debian_tarball(log)
    base_key = f"{tarball.name}:{tarball.stat().st_size}:{int(tarball.stat().st_mtime)}"
    how: dict[str, str] = {}
    for image in STAND_INS:
        stem = image.name.replace("/", "_").replace(":", "_")
        archive = cache_dir() / "images" / f"{stem}-{image.key(base_key)}.tar"
        with file_lock(archive.with_suffix(".lock")):
            if _has_image(docker, env, image.name):
                how[image.name] = "present"
                continue
            t0 = time.monotonic()
            if archive.exists():
                _docker(docker, env, "load", "-i", str(archive))
                how[image.name] = "loaded"
            else:
                if not _has_image(docker, env, DEBIAN):
                    with tarball.open("rb") as fh:
                        _docker(docker, env, "import", "-", DEBIAN, stdin=fh)
                with tempfile.TemporaryDirectory(prefix="stand-in-") as ctx:
                    (Path(ctx) / "Dockerfile").write_text(image.dockerfile)
                    for name, text, mode in image.files:
                        (Path(ctx) / name).write_text(text)
                        (Path(ctx) / name).chmod(mode)
                    _docker(docker, env, "build", "--network", "host", "-t", image.name, ctx)
                partial = archive.with_suffix(".tar.partial")
                _docker(docker, env, "save", "-o", str(partial), image.name)
                partial.replace(archive)
                for stale in archive.parent.glob(f"{stem}-*.tar"):
                    if stale != archive:
                        stale.unlink(missing_ok=True)
                how[image.name] = "built"
            log(f"{image.name}: {how[image.name]} in {time.monotonic() - t0:.1f}s")
    return how


SERVICE_TARGETS = ("release", "deployer")
# What the build stage's dependency layers depend on: their cache is keyed by these files.
_DEPS_INPUTS = (
    "services/Dockerfile",
    "requirements.lock",
    "pyproject.toml",
    "scripts/lock_subset.py",
)


def _ca_bundle() -> str | None:
    """The host's CA bundle for the ``cacert`` build secret (pip verifies PyPI with it)."""
    for var in ("PIP_CERT", "SSL_CERT_FILE"):
        path = os.environ.get(var, "")
        if path and Path(path).is_file():
            return path
    return None


def build_service_images(
    docker: list[str],
    env: dict[str, str],
    repo: Path,
    prefix: str = "relman",
    tag: str = "dev",
    log: Callable[[str], None] = print,
) -> list[str]:
    """``PREFIX/release:TAG`` and ``PREFIX/deployer:TAG`` from services/Dockerfile on the
    Python stand-in, with BuildKit and the host's CA bundle as the ``cacert`` secret.

    The build stage (the locked dependencies installed) is cached as a ``docker save``
    archive with BuildKit's inline cache, keyed by the files its layers come from, and given
    back with ``--cache-from``: a warm build installs nothing from PyPI.
    """
    h = hashlib.sha256(f"{RECIPE_VERSION}\0{_image_id(docker, env, PYTHON)}".encode())
    for name in _DEPS_INPUTS:
        h.update(b"\0" + (repo / name).read_bytes())
    key = h.hexdigest()[:16]
    deps = f"relman-local/build-cache:{key}"
    archive = cache_dir() / "images" / f"relman-local_build-cache-{key}.tar"
    build_env = {**env, "DOCKER_BUILDKIT": "1"}
    common = ["build", "--network", "host", "--build-arg", f"BASE={PYTHON}"]
    common += ["-f", str(repo / "services/Dockerfile")]
    ca = _ca_bundle()
    if ca:
        common += ["--secret", f"id=cacert,src={ca}"]
    t0 = time.monotonic()
    with file_lock(archive.with_suffix(".lock")):
        if not _has_image(docker, env, deps) and archive.exists():
            _docker(docker, env, "load", "-i", str(archive))
        if not _has_image(docker, env, deps):
            _docker(
                docker, build_env, *common, "--target", "build",
                "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", deps, str(repo),
            )  # fmt: skip
            partial = archive.with_suffix(".tar.partial")
            _docker(docker, env, "save", "-o", str(partial), deps)
            partial.replace(archive)
            for stale in archive.parent.glob("relman-local_build-cache-*.tar"):
                if stale != archive:
                    stale.unlink(missing_ok=True)
    names = []
    for target in SERVICE_TARGETS:
        name = f"{prefix}/{target}:{tag}"
        _docker(
            docker, build_env, *common, "--cache-from", deps, "--target", target,
            "-t", name, str(repo),
        )  # fmt: skip
        names.append(name)
    log(f"{', '.join(names)}: built in {time.monotonic() - t0:.1f}s")
    return names


def _image_id(docker: list[str], env: dict[str, str], name: str) -> str:
    return _docker(docker, env, "image", "inspect", "-f", "{{.Id}}", name).stdout.strip()


def main(argv: list[str]) -> int:
    """``local_images.py [TAG]``: the stand-ins, then ``relman/release:TAG`` and
    ``relman/deployer:TAG`` (TAG default ``dev``), in the daemon at ``DOCKER_HOST``."""
    # The docker CLI beside dockerd: a newer one elsewhere on PATH may want buildx for BuildKit.
    docker_cli = ["/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"]
    env = dict(os.environ)
    for name, state in ensure_images(docker_cli, env).items():
        print(f"{name}\t{state}")
    repo = Path(__file__).resolve().parents[2]
    tag = argv[1] if len(argv) > 1 else "dev"
    for name in build_service_images(docker_cli, env, repo, tag=tag):
        print(f"{name}\tbuilt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
