"""``sparkfs gc``: find (and with ``--apply`` remove) what killed processes left behind:
staging folders of ingests under the offline root (``sparkfs.offline.staging``) and
training-set directories that no registered version uses (``sparkfs.training.gc``: the
staging and unregistered version directories of crashed ``create_training_set`` calls).
Dry run by default; folders of running writers, committed files and registered training
set versions are never touched."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from . import open_store


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``gc`` subcommand."""
    p = sub.add_parser("gc", help="list (--apply: remove) staging folders of killed ingests "
                                  "and unregistered training-set data")
    p.add_argument("--apply", action="store_true", help="remove them (default: only list)")
    p.add_argument("--max-age-hours", type=float, default=6.0,
                   help="trust another host's running ingest or training-set create this "
                        "long (default 6)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_gc)


def _gc(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..offline.staging import collect_garbage
    from ..training import gc as training_gc
    from ..training.sets import training_sets_root

    if not args.max_age_hours > 0:
        raise ConfigError(f"--max-age-hours must be positive, got {args.max_age_hours}")
    fs = open_store(args)
    max_age = dt.timedelta(hours=args.max_age_hours)
    stages = collect_garbage(fs.offline.root, fs.offline.storage_options, apply=args.apply,
                             max_age=max_age)
    sets = training_gc.collect_garbage(fs.registry, training_sets_root(fs), apply=args.apply,
                                       max_age_s=max_age.total_seconds())
    if args.json:
        print(json.dumps({"applied": args.apply, "stages": [
            {"uri": s.uri, "bytes": s.size_bytes, "owner": s.owner} for s in stages],
            "training_sets": [{"path": g.path, "name": g.name, "kind": g.kind,
                               "bytes": g.size_bytes, "owner": g.owner} for g in sets]}))
        return 0
    verb = "removed" if args.apply else "would remove"
    for s in stages:
        print(f"{verb}  {s.uri}  ({s.size_bytes} bytes, pid {s.owner.get('pid', '?')} "
              f"on {s.owner.get('host', '?')})")
    for g in sets:
        print(f"{verb}  {g.path}  (training set {g.name!r}, {g.kind}, {g.size_bytes} bytes, "
              f"pid {g.owner.get('pid', '?')} on {g.owner.get('host', '?')})")
    total = sum(s.size_bytes for s in stages)
    print(f"{len(stages)} abandoned staging folder(s), {total} bytes")
    print(f"{len(sets)} abandoned training-set folder(s), "
          f"{sum(g.size_bytes for g in sets)} bytes")
    if not args.apply and (stages or sets):
        print("run `sparkfs gc --apply` to remove them")
    return 0
