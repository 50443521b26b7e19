"""``sparkfs validation-report | stats | monitor | search``.

``monitor`` exits with code 1 when any feature drifted (0 otherwise), so a scheduler can
alert on it; errors exit with 2 like every other command.
"""

from __future__ import annotations

import argparse
import json

from . import open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validation-report", help="show a group's latest validation report")
    p.add_argument("group", help="group name, or name@version")
    p.add_argument("--all", action="store_true", help="every stored report, oldest first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_validation_report)

    p = sub.add_parser("stats", help="show a group's feature statistics (per Delta version)")
    p.add_argument("group", help="group name, or name@version")
    p.add_argument("--version", type=int, help="Delta version (default: the latest with statistics)")
    p.add_argument("--html", metavar="PATH", help="also write an HTML report with histograms")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_stats)

    p = sub.add_parser("monitor", help="drift of recent data against a baseline; exit 1 on drift")
    p.add_argument("group", help="group name")
    p.add_argument("--baseline", required=True,
                   help="a Delta version (N or N..M) or a training-set name")
    p.add_argument("--versions", help="current window: Delta version N or N..M "
                   "(default: after the baseline version, else the latest commit)")
    p.add_argument("--start", help="current window: event time from (ISO 8601)")
    p.add_argument("--end", help="current window: event time until (ISO 8601, exclusive)")
    p.add_argument("--features", help="comma-separated features (default: all)")
    p.add_argument("--psi-threshold", type=float)
    p.add_argument("--ks-pvalue", type=float)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_monitor)

    p = sub.add_parser("search", help="find groups and features by name, description, tag, owner")
    p.add_argument("text", nargs="+")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_search)


def _validation_report(args: argparse.Namespace) -> int:
    fs = open_store(args)
    g = fs.get_feature_group(args.group)
    if args.all:
        from ..validation import reports

        found = reports(fs, g)
        if args.json:
            print(json.dumps([r.to_dict() for r in found], indent=2, default=str))
        else:
            print("\n\n".join(str(r) for r in found) or f"no validation reports for {g.name!r}")
        return 0
    report = fs.validation_report(g)
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report)
    return 0


def _stats(args: argparse.Namespace) -> int:
    fs = open_store(args)
    g = fs.get_feature_group(args.group)
    stats = fs.statistics(g, version=args.version, group_version=g.version)
    print(json.dumps(stats.to_dict(), indent=2, default=str) if args.json else stats)
    if args.html:
        from ..monitoring import write_html

        path = write_html(stats, args.html, g)
        if not args.json:
            print(f"wrote {path}")
    return 0


def _version_range(text: str):
    if ".." in text:
        a, b = text.split("..", 1)
        return int(a), int(b)
    return int(text)


def _check_time(option: str, value: str | None) -> None:
    """Refuse a ``--start``/``--end`` that is not ISO 8601 (exit 2, never 1: 1 means drift)."""
    import datetime as dt

    from ..errors import SparkfsError

    if value is None:
        return
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise SparkfsError(f"{option} {shown!r} is not an ISO 8601 time "
                           "(for example 2013-06-01 or 2013-06-01T12:00:00Z)") from None


def _monitor(args: argparse.Namespace) -> int:
    from ..errors import SparkfsError

    fs = open_store(args)
    try:
        baseline = _version_range(args.baseline)
    except ValueError:
        baseline = args.baseline  # a training-set name
    options = {}
    try:
        if args.versions:
            options["versions"] = _version_range(args.versions)
    except ValueError:
        raise SparkfsError(f"--versions {args.versions!r}: write N or N..M") from None
    for key in ("start", "end"):
        _check_time(f"--{key}", getattr(args, key))
    for key in ("start", "end", "psi_threshold", "ks_pvalue"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.features:
        options["features"] = [f.strip() for f in args.features.split(",") if f.strip()]
    report = fs.monitor(args.group, baseline, **options)
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report)
    return 1 if report.drifted else 0


def _search(args: argparse.Namespace) -> int:
    fs = open_store(args)
    hits = fs.search(" ".join(args.text))
    print(json.dumps([h.to_dict() for h in hits], indent=2) if args.json else hits)
    return 0
