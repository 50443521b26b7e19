"""``sparkfs validation-report | stats | monitor | search``.

Reports print as Rich tables (plain aligned text when piped), ``--json`` prints the
report's dict. ``monitor``'s table holds the cells of
``sparkfs.monitoring.compare.drift_table``, the ones the web UI's drift page shows; the
statistics use the UI's number format (``sparkfs.ui.data.number``), so both show the same
numbers. ``monitor`` exits with code 1 when any feature drifted (0 otherwise), so a
scheduler can alert on it; errors exit with 2 like every other command.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import config_of, open_store
from ._output import print_json, print_table

JSON_OPT = typer.Option("--json", help="print JSON")
GROUP_ARG = typer.Argument(help="group name, or name@version")


def register(app: typer.Typer) -> None:
    """Add ``validation-report``, ``stats``, ``monitor`` and ``search`` to ``app``.

    >>> app = typer.Typer(); register(app)
    >>> [c.name for c in app.registered_commands]
    ['validation-report', 'stats', 'monitor', 'search']
    """
    app.command("validation-report", help="show a group's latest validation report")(
        _validation_report)
    app.command("stats", help="show a group's feature statistics (per Delta version)")(_stats)
    app.command("monitor", help="drift of recent data against a baseline; exit 1 on drift")(
        _monitor)
    app.command("search", help="find groups and features by name, description, tag, owner")(
        _search)


def _validation_report(ctx: typer.Context, group: Annotated[str, GROUP_ARG],
                       all_: Annotated[bool, typer.Option(
                           "--all", help="every stored report, oldest first")] = False,
                       json_: Annotated[bool, JSON_OPT] = False) -> int:
    fs = open_store(config_of(ctx))
    g = fs.get_feature_group(group)
    if all_:
        from ..validation import reports

        found = reports(fs.catalog, g)
        if json_:
            print_json([r.to_dict() for r in found])
        elif not found:
            print(f"no validation reports for {g.name!r}")
        for i, r in enumerate([] if json_ else found):
            if i:
                print()
            print_validation_report(r)
        return 0
    report = fs.validation_report(g)
    if json_:
        print_json(report.to_dict())
    else:
        print_validation_report(report)
    return 0


def print_validation_report(r) -> None:
    """A ``ValidationReport``: its verdict line, the row accounting and a Rich table of
    the expectations."""
    from ..discovery import printable

    print(f"validation of {r.group} v{r.group_version}, run {printable(repr(r.run_id))} "
          f"({r.created_at[:19]}Z): {r.status.upper()}, policy={r.policy}, engine={r.engine}")
    written = (f"; Delta version {r.delta_version}" if r.delta_version is not None
               else "; nothing written" if r.status == "refused" else "")
    print(f"  rows: {r.rows_input} in, {r.rows_input - r.rows_quarantined} passed, "
          f"{r.rows_quarantined} quarantined{written}")
    if not r.results:
        print("  no expectations")
        return
    print_table(["", "EXPECTATION", "BAD ROWS", "BAD %", "OBSERVED"],
                [("ok" if x.get("success") else "FAIL", x["label"], x.get("unexpected_count"),
                  None if x.get("unexpected_percent") is None
                  else f"{x['unexpected_percent']:.2f}", x.get("observed_value"))
                 for x in r.results], indent=2)


def print_statistics(s) -> None:
    """A ``Statistics``: its header line and a Rich table, one row per feature, in the
    web UI's number format (missing values, None or NaN, as ``-``)."""
    from ..ui.data import number

    print(f"statistics of {s.group} v{s.group_version} at Delta version {s.delta_version} "
          f"({s.rows} rows, computed {s.computed_at[:19]}Z)")
    rows = []
    for name, f in s.features.items():
        q = f.get("quantiles") or {}
        rows.append((name, f.get("dtype"), *(number(f.get(k)) for k in (
            "count", "nulls", "nans", "min", "max", "mean", "stddev")),
            number(q.get("p50")), number(f.get("distinct"))))
    print_table(["FEATURE", "DTYPE", "COUNT", "NULLS", "NANS", "MIN", "MAX", "MEAN", "STDDEV",
                 "P50", "DISTINCT"], rows)


def print_drift_report(report) -> None:
    """A ``DriftReport``: both windows, the thresholds, the drift table (the cells of
    ``sparkfs.monitoring.compare.drift_table``) and the verdict."""
    from ..monitoring.compare import (
        DRIFT_COLUMNS,
        drift_table,
        drift_thresholds_text,
        drift_verdict,
    )

    print(f"drift of {report.group} v{report.group_version}: baseline {report.baseline} "
          f"({report.rows_baseline} rows) vs current {report.current} "
          f"({report.rows_current} rows)")
    print(f"thresholds: {drift_thresholds_text(report)}")
    print_table(DRIFT_COLUMNS, drift_table(report))
    print(drift_verdict(report))


def _stats(ctx: typer.Context, group: Annotated[str, GROUP_ARG],
           version: Annotated[int | None, typer.Option(
               help="Delta version (default: the latest with statistics)")] = None,
           html: Annotated[str | None, typer.Option(
               metavar="PATH", help="also write an HTML report with histograms")] = None,
           json_: Annotated[bool, JSON_OPT] = False) -> int:
    fs = open_store(config_of(ctx))
    g = fs.get_feature_group(group)
    stats = fs.statistics(g, version=version, group_version=g.version)
    if json_:
        print_json(stats.to_dict())
    else:
        print_statistics(stats)
    if html:
        from ..monitoring import write_html

        path = write_html(stats, html, g)
        if not json_:
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


def _monitor(ctx: typer.Context, group: Annotated[str, typer.Argument(help="group name")],
             baseline: Annotated[str, typer.Option(
                 help="a Delta version (N or N..M) or a training-set name")],
             versions: Annotated[str | None, typer.Option(
                 help="current window: Delta version N or N..M (default: after the baseline "
                 "version, else the latest commit)")] = None,
             start: Annotated[str | None, typer.Option(
                 help="current window: event time from (ISO 8601)")] = None,
             end: Annotated[str | None, typer.Option(
                 help="current window: event time until (ISO 8601, exclusive)")] = None,
             features: Annotated[str | None, typer.Option(
                 help="comma-separated features (default: all)")] = None,
             psi_threshold: Annotated[float | None, typer.Option()] = None,
             ks_pvalue: Annotated[float | None, typer.Option()] = None,
             json_: Annotated[bool, JSON_OPT] = False) -> int:
    from ..errors import SparkfsError

    fs = open_store(config_of(ctx))
    base: int | tuple[int, int] | str
    try:
        base = _version_range(baseline)
    except ValueError:
        base = baseline  # a training-set name
    options: dict = {}
    try:
        if versions:
            options["versions"] = _version_range(versions)
    except ValueError:
        raise SparkfsError(f"--versions {versions!r}: write N or N..M") from None
    _check_time("--start", start)
    _check_time("--end", end)
    given = {"start": start, "end": end, "psi_threshold": psi_threshold, "ks_pvalue": ks_pvalue}
    options.update({k: v for k, v in given.items() if v is not None})
    if features:
        options["features"] = [f.strip() for f in features.split(",") if f.strip()]
    report = fs.monitor(group, base, **options)
    if json_:
        print_json(report.to_dict())
    else:
        print_drift_report(report)
    return 1 if report.drifted else 0


def _search(ctx: typer.Context, text: Annotated[list[str], typer.Argument(help="words")],
            json_: Annotated[bool, JSON_OPT] = False) -> int:
    fs = open_store(config_of(ctx))
    hits = fs.search(" ".join(text))
    if json_:
        print_json([h.to_dict() for h in hits])
        return 0
    if not hits:
        print(hits)
        return 0
    from ._output import print_table

    print_table(["KIND", "NAME", "VERSION", "DTYPE", "MATCHED", "DESCRIPTION"],
                [(h.kind, h.name, h.version, h.dtype or None, ",".join(h.matched),
                  h.description or None) for h in hits])
    return 0
