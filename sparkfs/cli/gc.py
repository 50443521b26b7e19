"""``sparkfs gc``: find (and with ``--apply`` remove) what killed processes left behind:
staging folders of ingests under the offline root (``sparkfs.offline.staging``) and
training-set directories that no registered version uses (``sparkfs.training.gc``: the
staging and unregistered version directories of crashed ``create_training_set`` calls).
Dry run by default; folders of running writers, committed files and registered training
set versions are never touched."""

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
    app.command("gc", help="list (--apply: remove) staging folders of killed ingests "
                "and unregistered training-set data")(_gc)


def _gc(ctx: typer.Context,
        apply: Annotated[bool, typer.Option(
            "--apply", help="remove them (default: only list)")] = False,
        max_age_hours: Annotated[float, typer.Option(
            help="trust another host's running ingest or training-set create this long "
            "(default 6)")] = 6.0,
        json_: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> int:
    from ..errors import ConfigError
    from ..offline.staging import collect_garbage
    from ..training import gc as training_gc
    from ..training.sets import training_sets_root

    if not max_age_hours > 0:
        raise ConfigError(f"--max-age-hours must be positive, got {max_age_hours}")
    fs = open_store(config_of(ctx))
    max_age = dt.timedelta(hours=max_age_hours)
    stages = collect_garbage(fs.offline.root, fs.offline.storage_options, apply=apply,
                             max_age=max_age)
    sets = training_gc.collect_garbage(fs.registry, training_sets_root(fs.config.data_dir),
                                       apply=apply,
                                       max_age_s=max_age.total_seconds())
    if json_:
        print_json({"applied": apply, "stages": [
            {"uri": s.uri, "bytes": s.size_bytes, "owner": s.owner} for s in stages],
            "training_sets": [{"path": g.path, "name": g.name, "kind": g.kind,
                               "bytes": g.size_bytes, "owner": g.owner} for g in sets]},
            indent=None)
        return 0
    verb = "removed" if apply else "would remove"
    if stages:
        print_table([verb.upper(), "BYTES", "PID", "HOST"],
                    [(s.uri, s.size_bytes, s.owner.get("pid"), s.owner.get("host"))
                     for s in stages], limit=1000)
    if sets:
        print_table([verb.upper(), "TRAINING SET", "KIND", "BYTES", "PID", "HOST"],
                    [(g.path, g.name, g.kind, g.size_bytes, g.owner.get("pid"),
                      g.owner.get("host")) for g in sets], limit=1000)
    total = sum(s.size_bytes for s in stages)
    print(f"{len(stages)} abandoned staging folder(s), {total} bytes")
    print(f"{len(sets)} abandoned training-set folder(s), "
          f"{sum(g.size_bytes for g in sets)} bytes")
    if not apply and (stages or sets):
        print("run `sparkfs gc --apply` to remove them")
    return 0
