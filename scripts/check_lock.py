#!/usr/bin/env python3
"""Fail when requirements.lock no longer matches the pins in pyproject.toml.

Cheap and offline: it reads both files and compares. Every `name==version` pin in
[project].dependencies and in the `dev` extra must appear in the lock with that exact
version; the installer (pip) and the [build-system] requirements must be locked too, since
`make install` builds the editable project without build isolation; and every locked
package must carry at least one --hash. It does not re-resolve: `make lock` does that.

Usage: python3 scripts/check_lock.py [pyproject.toml] [requirements.lock]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    sys.exit("check_lock.py needs Python 3.11 or newer (tomllib)")

ROOT = Path(__file__).resolve().parent.parent
# name, optional [extras], then the version specifier and an optional "; marker"
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;.*)?$")
LOCKED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins(data: dict) -> tuple[dict[str, str], list[str]]:
    """{normalized name: version} for every runtime and dev pin, plus problems found."""
    project = data.get("project", {})
    specs = list(project.get("dependencies", []))
    specs += project.get("optional-dependencies", {}).get("dev", [])
    pins: dict[str, str] = {}
    problems: list[str] = []
    for spec in specs:
        m = PIN.match(spec)
        version = m.group(2) if m else ""
        if not m or not version.startswith("==") or "," in version or "*" in version:
            problems.append(f"pyproject.toml: {spec!r} is not an exact 'name==version' pin")
            continue
        pins[normalize(m.group(1))] = version[2:].strip()
    return pins, problems


def lock_entries(text: str) -> tuple[dict[str, set[str]], list[str]]:
    """{normalized name: versions} from the lock (a universal lock may hold one package at two
    versions under different markers), plus the names of entries that carry no --hash."""
    locked: dict[str, set[str]] = {}
    unhashed: list[str] = []
    # Join backslash continuations so each entry is one logical line.
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        m = LOCKED.match(entry)
        if not m:
            continue
        name = normalize(m.group(1))
        locked.setdefault(name, set()).add(m.group(2))
        if "--hash=" not in entry:
            unhashed.append(f"{m.group(1)}=={m.group(2)}")
    return locked, unhashed


def main(argv: list[str]) -> int:
    pyproject = Path(argv[1]) if len(argv) > 1 else ROOT / "pyproject.toml"
    lockfile = Path(argv[2]) if len(argv) > 2 else ROOT / "requirements.lock"
    if not lockfile.is_file():
        print(f"{lockfile.name} is missing: run 'make lock' and commit it", file=sys.stderr)
        return 1
    data = tomllib.loads(pyproject.read_text())
    pins, problems = pyproject_pins(data)
    locked, unhashed = lock_entries(lockfile.read_text())

    for name, version in sorted(pins.items()):
        have = locked.get(name)
        if not have:
            problems.append(f"{name}=={version} is pinned in pyproject.toml but not locked")
        elif version not in have:
            problems.append(
                f"{name} is pinned to {version} in pyproject.toml "
                f"but locked at {', '.join(sorted(have))}"
            )
    build = [PIN.match(r) for r in data.get("build-system", {}).get("requires", [])]
    for name in ["pip", *(m.group(1) for m in build if m)]:
        if normalize(name) not in locked:
            problems.append(f"{name} (needed to install the project) is not locked")
    problems += [f"{entry} has no --hash in {lockfile.name}" for entry in unhashed]

    if problems:
        print(f"{lockfile.name} does not match {pyproject.name}:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print("run 'make lock' and commit requirements.lock", file=sys.stderr)
        return 1
    print(f"{lockfile.name} matches the {len(pins)} pins in {pyproject.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
