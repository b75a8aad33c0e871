"""The one error type of the CLI and its named exit codes.

Everything a person should read as ``ERROR: <message>`` is a :class:`CliError`; ``main`` is
the only place that prints it.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure to report to the user. ``str(err)`` is the message (no ``ERROR:`` prefix);
    ``code`` is the gRPC status code's name when a call failed (``NOT_FOUND``), else empty."""

    exit_code = EXIT_ERROR
    code = ""


class Detached(CliError):
    """The user pressed Ctrl-C while following a deployment; it goes on on the server."""

    exit_code = EXIT_INTERRUPTED
