"""``sparkfs gc``: find (and with ``--apply`` remove) the staging folders that killed
ingests left under the offline root. Dry run by default; folders of running ingests and
committed files are never touched (see ``sparkfs.offline.staging``)."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from . import open_store


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``gc`` subcommand."""
    p = sub.add_parser("gc", help="list (--apply: remove) staging folders of killed ingests")
    p.add_argument("--apply", action="store_true", help="remove them (default: only list)")
    p.add_argument("--max-age-hours", type=float, default=6.0,
                   help="trust another host's running ingest this long (default 6)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_gc)


def _gc(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..offline.staging import collect_garbage

    if not args.max_age_hours > 0:
        raise ConfigError(f"--max-age-hours must be positive, got {args.max_age_hours}")
    fs = open_store(args)
    stages = collect_garbage(fs.offline.root, fs.offline.storage_options, apply=args.apply,
                             max_age=dt.timedelta(hours=args.max_age_hours))
    if args.json:
        print(json.dumps({"applied": args.apply, "stages": [
            {"uri": s.uri, "bytes": s.size_bytes, "owner": s.owner} for s in stages]}))
        return 0
    verb = "removed" if args.apply else "would remove"
    for s in stages:
        print(f"{verb}  {s.uri}  ({s.size_bytes} bytes, pid {s.owner.get('pid', '?')} "
              f"on {s.owner.get('host', '?')})")
    total = sum(s.size_bytes for s in stages)
    print(f"{len(stages)} abandoned staging folder(s), {total} bytes"
          + ("" if args.apply or not stages else "; run `sparkfs gc --apply` to remove them"))
    return 0
