"""The ``sparkfs`` command, built with Typer (Click underneath) and Rich.

Each area's subcommands live in their own module here (``core``, ``online``, ``serve``,
``quality``, ``training``, ``inference``, ``gc``, ``streams``); each module has
``register(app: typer.Typer)``, which adds its commands to the root app. Commands read
the global ``--config`` with :func:`config_of` and open the store with :func:`open_store`.

Contract kept from the argparse version:

- errors sparkfs raises on purpose (:class:`~sparkfs.errors.SparkfsError`) are one line
  on stderr, ``sparkfs COMMAND: error: MESSAGE``, exit code 2; nothing else is swallowed;
- usage errors (unknown option, bad value, missing argument) print the usage and
  ``sparkfs COMMAND: error: MESSAGE`` on stderr and exit with 2;
- ``main(argv)`` returns the exit code instead of exiting (jobs and tests call it);
- ``--json`` output is plain JSON (never Rich markup); tables are Rich tables;
- long work shows progress on stderr (:mod:`sparkfs.progress`): Rich bars with counts,
  rates, elapsed time and ETA when stderr is a terminal, else plain lines (one every few
  seconds and one per finished task; ``SPARKFS_PROGRESS=off`` silences them).

Startup imports neither pyspark nor the web framework, so ``sparkfs --help`` is fast.
Shell completion: ``sparkfs --install-completion`` / ``--show-completion``.

>>> main(["--help"]) == 0  # doctest: +ELLIPSIS
Usage: sparkfs ...
True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from ..errors import SparkfsError

#: Modules that add subcommands, in help order (``ui`` is added by :func:`_register_ui`).
COMMAND_MODULES = ["core", "online", "serve", "quality", "training", "inference", "gc",
                   "streams", "governance"]

CONFIG_HELP = "YAML config (default: $SPARKFS_CONFIG, else the embedded defaults)"

#: Commands whose option takes several values after one flag (argparse ``nargs="+"``):
#: ``-f a b`` is read as ``-f a -f b``. Values never start with ``-``.
_MULTI_VALUE_OPTIONS = {"get-online": {"--features", "-f"}}


def build_app() -> typer.Typer:
    """The root Typer app with every command module registered.

    >>> sorted(c.name for c in build_app().registered_commands)[:3]
    ['apply', 'deploy', 'deployments']
    """
    app = typer.Typer(name="sparkfs", help="sparkfs: a feature store for Spark feature pipelines",
                      add_completion=True, pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["-h", "--help"]})

    @app.callback()
    def root(ctx: typer.Context,
             config: Annotated[str | None, typer.Option("--config", help=CONFIG_HELP)] = None,
             ) -> None:
        obj = ctx.ensure_object(dict)
        obj["config"] = config
        obj["command"] = ctx.invoked_subcommand
        from ..progress import for_stderr, use

        # progress of the command's long work, until the command ends (also under CliRunner)
        ctx.with_resource(use(for_stderr()))

    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(app)
    _register_ui(app)
    return app


def _register_ui(app: typer.Typer) -> None:
    """``sparkfs ui``: the web UI's own module (``sparkfs.cli.ui``) provides the work as a
    plain function ``ui(port, host, config)``; the command is declared here, so that the
    global ``--config`` applies to it too. Added when that module is present."""
    import importlib.util

    if importlib.util.find_spec(f"{__name__}.ui") is None:
        return

    @app.command("ui", help="serve the read-only web UI (no feature API; only the drift page "
                 "uses Spark)")
    def ui(ctx: typer.Context,
           config: Annotated[str | None, typer.Option("--config", help=CONFIG_HELP)] = None,
           host: Annotated[str, typer.Option(
               help="interface to bind (default 127.0.0.1)")] = "127.0.0.1",
           port: Annotated[int, typer.Option(help="TCP port (default 8000)")] = 8000) -> int:
        module = importlib.import_module(f"{__name__}.ui")
        return module.ui(port, host, config if config is not None else config_of(ctx))


def build_command() -> Any:
    """The Click command behind the app (what ``main`` runs)."""
    return typer.main.get_command(build_app())


def config_of(ctx: typer.Context) -> str | None:
    """The global ``--config`` (a command's own ``--config``, if it has one, wins)."""
    return ctx.find_root().params.get("config")


def open_store(config: str | None):
    """The FeatureStore for ``--config`` (Spark is only started if a command needs it)."""
    from ..store import FeatureStore

    return FeatureStore.from_config(config)


def _spread_multi_values(argv: list[str]) -> list[str]:
    """``get-online -f a b`` -> ``get-online -f a -f b`` (argparse ``nargs="+"``)."""
    command = next((a for a in argv if a in _MULTI_VALUE_OPTIONS), None)
    if command is None:
        return argv
    flags, out, flag, first = _MULTI_VALUE_OPTIONS[command], [], None, False
    for arg in argv:
        if arg in flags:
            flag, first = arg, True
        elif flag is not None and not arg.startswith("-"):
            if not first:
                out.append(flag)
            first = False
        else:
            flag = None
        out.append(arg)
    return out


def _usage_error(exc: Any) -> int:
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "sparkfs"
    if ctx is not None:
        print(ctx.get_usage(), file=sys.stderr)
    print(f"{path}: error: {exc.format_message()}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sparkfs`` command with ``argv`` (default: ``sys.argv[1:]``); returns the
    exit code: 0 ok, 1 a finding (drift, a differing training set), 2 an error."""
    from typer._click import exceptions as click_exc

    args = _spread_multi_values(list(sys.argv[1:] if argv is None else argv))
    command = build_command()
    state: dict[str, Any] = {}
    try:
        rc = command.main(args=args, prog_name="sparkfs", standalone_mode=False, obj=state)
    except SparkfsError as exc:
        print(f"sparkfs {state.get('command') or ''}: error: {exc}".replace("  ", " ", 1),
              file=sys.stderr)
        return 2
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else exc.format_message(), file=sys.stderr)
        return 2
    except click_exc.ClickException as exc:
        return _usage_error(exc)
    except (KeyboardInterrupt, typer.Abort):
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
