"""The ``sparkfs`` command. Each area's subcommands live in their own module here
(``core``, ``online``, ``serve``, ``training``, ``quality``, ``streams``); each module has
``register(subparsers)`` and sets ``func`` on its parsers.

Errors sparkfs raises on purpose are printed as one line on stderr with exit code 2;
nothing else is swallowed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import SparkfsError

#: Modules that add subcommands, in help order.
COMMAND_MODULES = ["core", "online", "serve", "quality", "training", "inference", "gc",
                   "streams", "ui"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparkfs", description="sparkfs: a feature store for Spark feature pipelines")
    parser.add_argument("--config", help="YAML config (default: $SPARKFS_CONFIG, else the "
                        "embedded defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def open_store(args: argparse.Namespace):
    """The FeatureStore for ``--config`` (Spark is only started if a command needs it)."""
    from ..store import FeatureStore

    return FeatureStore.from_config(getattr(args, "config", None))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except SparkfsError as exc:
        print(f"sparkfs {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
