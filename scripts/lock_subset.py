"""Print the part of requirements.lock that the services need at run time.

The lock holds the runtime pins, the ``dev`` extra and the build requirements, all with
hashes. The service images install only what runs: the packages of
``[project.dependencies]`` and everything the lock's ``# via`` notes say they pull in,
plus the ``[build-system]`` requirements to install the project itself. Each block is
copied as it is (pin, marker, hashes), so ``pip install --require-hashes`` checks it as
``make install`` does.

    python3 scripts/lock_subset.py requirements.lock pyproject.toml > runtime.txt

Standard library only: it runs inside the image build, before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement.strip())
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalize(match.group(0))


def parse_lock(text: str) -> dict[str, tuple[list[str], set[str]]]:
    """Each locked package: (its block of lines, the names its ``# via`` notes give)."""
    blocks: dict[str, tuple[list[str], set[str]]] = {}
    current: str | None = None
    in_via = False
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current = requirement_name(line.split("==", 1)[0])
            blocks[current] = ([line], set())
            in_via = False
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                blocks[current][1].add(rest)
        elif in_via and stripped.startswith("#   "):
            blocks[current][1].add(stripped.removeprefix("#").strip())
        elif stripped.startswith("--hash") or stripped.startswith("#"):
            in_via = False
        else:
            in_via = False
        if not stripped.startswith("#"):
            blocks[current][0].append(line)
    return blocks


def runtime_subset(lock: str, pyproject: dict[str, object]) -> list[str]:
    """The names (in lock order) needed to run the project and to install it."""
    project = pyproject["project"]
    build = pyproject["build-system"]
    assert isinstance(project, dict) and isinstance(build, dict)
    roots = {requirement_name(r) for r in project.get("dependencies", [])}
    roots |= {requirement_name(r) for r in build.get("requires", [])}
    blocks = parse_lock(lock)
    needed = set(roots)
    changed = True
    while changed:
        changed = False
        for name, (_, via) in blocks.items():
            if name not in needed and any(normalize(v) in needed for v in via):
                needed.add(name)
                changed = True
    missing = sorted(roots - set(blocks))
    if missing:
        raise SystemExit(f"not in the lock: {', '.join(missing)} (run `make lock`)")
    return [name for name in blocks if name in needed]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    lock = Path(argv[1]).read_text()
    with open(argv[2], "rb") as fh:
        pyproject = tomllib.load(fh)
    blocks = parse_lock(lock)
    for name in runtime_subset(lock, pyproject):
        print("\n".join(blocks[name][0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
