"""The programs that read settings, named once (for :mod:`relman_common.settings`)."""

from __future__ import annotations

RELEASE = "release"
DEPLOYER = "deployer"
CLI = "cli"


def flags_of(*programs: str, flag: str) -> dict[str, str]:
    """The same flag for each of ``programs``."""
    return dict.fromkeys(programs, flag)
