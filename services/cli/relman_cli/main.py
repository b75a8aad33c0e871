"""The ``relman`` command: entry point, command groups, and the one place errors are printed.

Command groups are imported only when used, so ``relman --help`` and completion stay fast and
``relman releases`` never loads what ``relman deployments`` needs.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click

from relman_cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, CliError, Detached

# gRPC's C core logs to stderr (e.g. every failed TLS handshake); a person reads only our
# ERROR line. Set before grpc is first imported; GRPC_VERBOSITY=... still overrides.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

# name -> (module, attribute, one-line help shown by `relman --help` without importing it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "apps": ("relman_cli.commands.apps", "apps", "List apps, or manage one."),
    "build": ("relman_cli.commands.build", "build", "Build a source directory into a release."),
    "builds": (
        "relman_cli.commands.builds",
        "builds",
        "List an app's builds; show, follow, export or import one.",
    ),
    "deploy": (
        "relman_cli.commands.build",
        "deploy",
        "Build a source directory, then promote its release.",
    ),
    "env": ("relman_cli.commands.env", "env", "Show or change an app's environment."),
    "releases": (
        "relman_cli.commands.releases",
        "releases",
        "List, inspect, compose, promote and roll back releases.",
    ),
    "deployments": (
        "relman_cli.commands.deployments",
        "deployments",
        "List an app's deployments and follow their events.",
    ),
    "tokens": ("relman_cli.commands.tokens", "tokens", "List, create and revoke API tokens."),
    "webhooks": (
        "relman_cli.commands.webhooks",
        "webhooks",
        "List an app's webhooks; add, remove, or see their deliveries.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr, _ = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="relman", prog_name="relman")
def cli() -> None:
    """relman: immutable releases, streamed rolling deployments, automatic rollback.

    Most commands take -a/--app (or $RELMAN_APP) and -r/--rack (or $RELMAN_RACK); read
    commands take -o json.
    """


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code. ``ERROR: <message>`` on stderr for any failure."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="relman", standalone_mode=False)
    except Detached as err:
        _stderr(str(err))
        return err.exit_code
    except CliError as err:
        _stderr(f"ERROR: {err}")
        return err.exit_code
    except click.exceptions.Abort:  # Ctrl-C outside a deployment stream
        _stderr("Interrupted")
        return EXIT_INTERRUPTED
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except BrokenPipeError:  # `relman releases | head -1`
        _silence_stdout()
        return EXIT_ERROR
    finally:
        _flush()
    return result if isinstance(result, int) else EXIT_OK


def _stderr(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _flush() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        _silence_stdout()


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
