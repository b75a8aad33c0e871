"""Fault injection for tests: the Release service, which kills itself (SIGKILL, no cleanup,
as ``kill -9`` would) inside a prune's transaction, after the prune's first deletions ran.

Run as ``python -m support.killed_in_prune ARGS...`` with ``tests/`` on ``PYTHONPATH``: it
is ``python -m relman_release ARGS...`` plus one SQLAlchemy hook, here in the tests and not
in the service. The hook watches the statements every connection sends; once a
``DELETE FROM releases`` has been executed, the next ``DELETE FROM builds`` (the prune's
third statement, after the releases and the build logs went) is not sent: the process
kills itself there, with the transaction open and uncommitted.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_deleted_releases = False


def _kill_before_deleting_builds(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    global _deleted_releases
    text = " ".join(statement.split()).upper()
    if text.startswith("DELETE FROM RELEASES "):
        _deleted_releases = True
    elif _deleted_releases and text.startswith("DELETE FROM BUILDS "):
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    event.listen(Engine, "before_cursor_execute", _kill_before_deleting_builds)
    from relman_release.__main__ import main as release_main

    return release_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
