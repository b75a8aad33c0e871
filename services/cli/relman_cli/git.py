"""What the working directory's git tree says about a build: its commit, if the tree is clean."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SHORT_SHA = 10


@dataclass(frozen=True)
class Head:
    sha: str
    subject: str
    clean: bool


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def head(cwd: Path) -> Head | None:
    """HEAD's sha and subject and whether the tree is clean; None outside a git tree."""
    sha = _git(cwd, "rev-parse", "HEAD")
    if not sha:
        return None
    subject = _git(cwd, "log", "-1", "--format=%s", "HEAD") or ""
    status = _git(cwd, "status", "--porcelain")
    return Head(sha=sha.strip(), subject=subject.strip(), clean=status == "")


def build_description(cwd: Path, git_sha: str = "") -> tuple[str, str]:
    """The description and git sha of a build made from ``cwd``.

    A clean tree at ``git_sha`` (or with no sha given) gives ``build <10-char sha> <subject>``
    and HEAD's sha; otherwise the description says only what is known: ``build <sha>`` or
    ``build``, since a dirty tree is not what any commit holds.
    """
    found = head(cwd)
    if found is not None and found.clean and (not git_sha or git_sha == found.sha):
        return f"build {found.sha[:SHORT_SHA]} {found.subject}".rstrip(), found.sha
    if git_sha:
        return f"build {git_sha[:SHORT_SHA]}", git_sha
    return "build", ""
