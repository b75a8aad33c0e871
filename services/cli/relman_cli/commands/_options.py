"""How commands are declared: the shared options, and the groups that list by default.

The shared options (``-a/--app``, ``-r/--rack``, ``-o/--output``, ``--limit``) are added by
one decorator, :func:`options`; commands do not take them as arguments but read them from
the context (see :mod:`relman_cli.commands._common`), where a value given to a group also
serves its subcommands (``relman releases -a x info R``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import click
from relman_common.settings import APP, RACK
from relman_common.vocabulary import MAX_PAGE_SIZE

from relman_cli import output
from relman_cli.commands._common import output_of
from relman_cli.errors import CliError

Command = Callable[..., None]
Decorator = Callable[[Command], Command]
Shared = Literal["app", "rack", "output", "limit"]
Listing = Callable[[click.Context], output.Result]

INT32_MAX = 2**31 - 1


def at_most(maximum: int) -> Callable[[click.Context, click.Parameter, int | None], int | None]:
    """An option callback refusing a number above ``maximum`` (``click.IntRange`` checks the
    minimum of 1) with an ERROR rather than a traceback when the request is built."""

    def check(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
        if value is not None and value > maximum:
            raise CliError(f"invalid --{param.name} {value}: use 1 to {maximum}")
        return value

    return check


# name -> (the parameter's name in the context, the click option)
_SHARED: dict[Shared, tuple[str, Decorator]] = {
    "app": ("app", click.option("-a", "--app", "app", help=f"App name (default: ${APP.env}).")),
    "rack": (
        "rack",
        click.option(
            "-r",
            "--rack",
            "rack",
            help=f"Rack name from ~/.config/relman/racks.yml (default: ${RACK.env}).",
        ),
    ),
    "output": (
        "output_format",
        click.option(
            "-o",
            "--output",
            "output_format",
            type=click.Choice(output.FORMATS),
            help="Output format (default: text).",
        ),
    ),
    "limit": (
        "limit",
        click.option(
            "--limit",
            type=click.IntRange(min=1),
            callback=at_most(MAX_PAGE_SIZE),  # the server's largest page
            help="How many (default 10).",
        ),
    ),
}


def options(*names: Shared) -> Decorator:
    """Add the shared options ``names``, in this order; the command reads their values from
    the context instead of taking them as arguments."""

    def decorate(command: Command) -> Command:
        hidden = {_SHARED[name][0] for name in names}

        @functools.wraps(command)
        def run(*args: object, **kwargs: object) -> None:
            command(*args, **{k: v for k, v in kwargs.items() if k not in hidden})

        decorated: Command = run
        for name in reversed(names):
            decorated = _SHARED[name][1](decorated)
        return decorated

    return decorate


# The options of an app's paged listings (builds, releases, deployments).
PAGED = options("app", "rack", "output", "limit")


def shows(command: Callable[..., output.Result]) -> Command:
    """A read command: ``-a``, ``-r`` and ``-o``; it returns its result, rendered here."""

    @functools.wraps(command)
    def run(ctx: click.Context, *args: object, **kwargs: object) -> None:
        output.render(command(ctx, *args, **kwargs), output_of(ctx))

    return options("app", "rack", "output")(click.pass_context(run))


# ``--id``: a command that makes a release prints only its id on stdout (it takes ``id_only``).
id_option = click.option(
    "--id",
    "id_only",
    is_flag=True,
    help="Print only the new release's id on stdout (progress goes to stderr).",
)


FORCE_HELP = "Promote even though the app is locked (recorded on the deployment)."


def force_option(command: Command) -> Command:
    """``--force``, read from the context (``_common.forced``), not taken as an argument."""

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> None:
        kwargs.pop("force", None)
        command(*args, **kwargs)

    return click.option("--force", is_flag=True, help=FORCE_HELP)(run)


def makes_release(command: Command) -> Command:
    """``--promote``, ``--force``, ``--id``, ``-a`` and ``-r``: the options of every command
    that makes a release (it takes ``promote`` and ``id_only``; see
    ``_common.announce_release``), and ``--dry-run`` (with ``--exit-code``, ``--reveal``) to
    show what ``--promote`` would do."""
    command = force_option(id_option(options("app", "rack")(command)))
    command = click.option("--promote", is_flag=True, help="Promote the new release.")(command)
    return dry_run_options(command, needs_promote=True)


@dataclass(frozen=True)
class DryRun:
    """``--dry-run``, ``--exit-code``, ``--reveal`` as given to the running command."""

    on: bool = False
    exit_code: bool = False
    reveal: bool = False


DRY_RUN_META = "relman.dry_run"


def dry_run_of(ctx: click.Context) -> DryRun:
    """The dry-run flags of the running command (all off for a command without them)."""
    flags = ctx.meta.get(DRY_RUN_META)
    return flags if isinstance(flags, DryRun) else DryRun()


def dry_run_options(command: Command, *, needs_promote: bool = False) -> Command:
    """``--dry-run``, ``--exit-code``, ``--reveal``: the command does not take them; they are
    checked before it runs (so a refused combination changes nothing) and kept in the context
    for :func:`dry_run_of`. ``needs_promote``: the command promotes only with ``--promote``."""

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> None:
        flags = DryRun(
            bool(kwargs.pop("dry_run")), bool(kwargs.pop("exit_code")), bool(kwargs.pop("reveal"))
        )
        if (flags.exit_code or flags.reveal) and not flags.on:
            raise CliError("--exit-code and --reveal go with --dry-run")
        if flags.on and needs_promote and not kwargs.get("promote"):
            raise CliError(
                "--dry-run goes with --promote: it shows what promoting the new release would "
                "change instead of promoting it"
            )
        click.get_current_context().meta[DRY_RUN_META] = flags
        command(*args, **kwargs)

    decorated: Command = run
    decorated = click.option(
        "--reveal", is_flag=True, help="With --dry-run: show env values and Secret data."
    )(decorated)
    decorated = click.option(
        "--exit-code", is_flag=True, help="With --dry-run: exit 1 when there is a change."
    )(decorated)
    return click.option(
        "--dry-run",
        is_flag=True,
        help="Show what promoting would change against the active release; change nothing.",
    )(decorated)


def follows(id_name: str, until: str) -> Decorator:
    """``ID [-f/--follow] -a -r -o``: a command printing the log of the thing named by ID
    (as ``id_name``), and with ``--follow`` going on ``until`` it ends."""

    def decorate(command: Command) -> Command:
        command = options("app", "rack", "output")(click.pass_context(command))
        command = click.option("--follow", "-f", is_flag=True, help=until)(command)
        return click.argument(id_name)(command)

    return decorate


def on_name(verb: str) -> Decorator:
    """A command on ``NAME`` (and ``-r``) whose work shows as ``<verb> NAME... OK``."""

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def run(ctx: click.Context, name: str) -> None:
            progress = output.Progress()
            progress.start(f"{verb} {name}")
            command(ctx, name)
            progress.ok()

        return click.argument("name")(options("rack")(click.pass_context(run)))

    return decorate


def listing_group(name: str, shared: Decorator, *, help: str) -> Callable[[Listing], click.Group]:
    """Make the decorated listing a command group: the group renders the listing when
    invoked alone, and so does its ``list`` subcommand (helped by the listing's docstring);
    ``shared`` adds the options both take."""

    def decorate(listing: Listing) -> click.Group:
        def run(ctx: click.Context, **_: object) -> None:
            if ctx.invoked_subcommand is None:
                output.render(listing(ctx), output_of(ctx))

        def run_list(ctx: click.Context, **_: object) -> None:
            output.render(listing(ctx), output_of(ctx))

        group = click.group(name, invoke_without_command=True, help=help)(
            shared(click.pass_context(run))
        )
        group.command("list", help=listing.__doc__)(shared(click.pass_context(run_list)))
        return group

    return decorate
