"""``sparkfs gc``: find (and with ``--apply`` remove) the staging folders that killed
ingests left under the offline root. Dry run by default; folders of running ingests and
committed files are never touched (see ``sparkfs.offline.staging``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from . import config_of, open_store
from ._output import print_json, print_table


def register(app: typer.Typer) -> None:
    """Add the ``gc`` command.

    >>> app = typer.Typer(); register(app)
    >>> [c.name for c in app.registered_commands]
    ['gc']
    """
    app.command("gc", help="list (--apply: remove) staging folders of killed ingests")(_gc)


def _gc(ctx: typer.Context,
        apply: Annotated[bool, typer.Option(
            "--apply", help="remove them (default: only list)")] = False,
        max_age_hours: Annotated[float, typer.Option(
            help="trust another host's running ingest this long (default 6)")] = 6.0,
        json_: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> int:
    from ..errors import ConfigError
    from ..offline.staging import collect_garbage

    if not max_age_hours > 0:
        raise ConfigError(f"--max-age-hours must be positive, got {max_age_hours}")
    fs = open_store(config_of(ctx))
    stages = collect_garbage(fs.offline.root, fs.offline.storage_options, apply=apply,
                             max_age=dt.timedelta(hours=max_age_hours))
    if json_:
        print_json({"applied": apply, "stages": [
            {"uri": s.uri, "bytes": s.size_bytes, "owner": s.owner} for s in stages]},
            indent=None)
        return 0
    verb = "removed" if apply else "would remove"
    if stages:
        print_table([verb.upper(), "BYTES", "PID", "HOST"],
                    [(s.uri, s.size_bytes, s.owner.get("pid"), s.owner.get("host"))
                     for s in stages], limit=1000)
    total = sum(s.size_bytes for s in stages)
    print(f"{len(stages)} abandoned staging folder(s), {total} bytes"
          + ("" if apply or not stages else "; run `sparkfs gc --apply` to remove them"))
    return 0
