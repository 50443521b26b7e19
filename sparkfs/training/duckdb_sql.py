"""The DuckDB SQL both DuckDB-based readers share: the point-in-time join of the DuckDB
engine (``duckdb.py``) and the tasks of the Spark broadcast strategy
(``spark_broadcast.py``). One module, imported by both, importing neither.

A history row's position on its key's timeline is ``(E, _commit_time)``; a spine row at
``t`` looks up ``(t, +infinity)`` (see ``duckdb.py``'s docstring). ``parquet_positions``
packs it into 64 bits when each Parquet file holds one commit, ``wide_positions`` into
128 bits for any table.

>>> wide_positions("e", "c")[0]
'(e::HUGEINT * 9223372036854775808 + c)'
>>> KEY_SQL["long"], q('a"b')
('BIGINT', '"a""b"')
"""

from __future__ import annotations

from ..dtypes import ALL, KEY_DTYPES
from ..offline.tables import COMMIT_TIME
from ..sql import quote_ident, sql_literal

_SHIFT = 2**63
#: DuckDB type a join key of each dtype is compared as (spine and history alike)
KEY_SQL = {d: ALL[d].key_dtype.duckdb for d in KEY_DTYPES}


def q(name: str) -> str:
    """Quote an identifier for DuckDB (``sparkfs.sql.quote_ident``).

    >>> q("ts")
    '"ts"'
    """
    return quote_ident(name, "duckdb")


def local_paths(uris: list[str]) -> list[str] | None:
    """The files as local paths, or None when there are none or any is remote."""
    if not uris or any("://" in u and not u.startswith("file://") for u in uris):
        return None
    return [u.removeprefix("file://") for u in uris]


def parquet_positions(paths: list[str], event_time: str) -> tuple[str, str, str]:
    """``(source, position, lookup)`` for history files on local disk: the SQL of the scan,
    of a history row's ``(E, _commit_time)`` position and of the position a spine time
    (``{t_us}``, epoch µs) looks up (module docstring). Per commit, with 64-bit positions,
    when every file holds one commit time; one 128-bit scan otherwise."""
    wide = (f"read_parquet({_sql_list(paths)})",) + wide_positions(
        f"epoch_us({q(event_time)})", f"epoch_us({q(COMMIT_TIME)})")
    layout = commit_layout(paths, event_time)
    if layout is None:
        return wide
    lo, hi, by_commit = layout
    step = 2 ** (len(by_commit) - 1).bit_length()
    if (hi - lo + 1) * step >= 2**63:  # too many commits over too long a time for 63 bits
        return wide
    scans = " UNION ALL ".join(f"SELECT *, {r} AS _sfs_commit FROM read_parquet({_sql_list(group)})"
                               for r, group in enumerate(by_commit))
    return (f"({scans})", f"((epoch_us({q(event_time)}) - {lo}) * {step} + _sfs_commit)",
            f"((least(greatest({{t_us}}, {lo - 1}), {hi}) - {lo}) * {step} + {step - 1})")


def wide_positions(e_us: str, c_us: str) -> tuple[str, str]:
    """``(position, lookup)`` as 128-bit integers, for any table: ``e_us`` and ``c_us`` are
    the SQL of a row's event and commit time in epoch µs."""
    return (f"({e_us}::HUGEINT * {_SHIFT} + {c_us})", f"({{t_us}}::HUGEINT * {_SHIFT} + {_SHIFT - 1})")


def commit_layout(paths: list[str], event_time: str) -> tuple[int, int, list[list[str]]] | None:
    """``(lo, hi, files by commit)`` when every Parquet file holds a single
    ``_commit_time`` (sparkfs's ingest writes one per Delta commit): the earliest and latest
    event time (epoch µs) and the files grouped by commit time, earliest commit first. Read
    from the files' footers, whose statistics are exact. None when a file holds several
    commit times or a null one, or lacks exact microsecond statistics."""
    import json

    import pyarrow.parquet as pq

    by_commit: dict[int, list[str]] = {}
    lo = hi = None
    for path in paths:
        md = pq.read_metadata(path)
        cols = {md.schema.column(i).path: i for i in range(md.num_columns)}
        for c in (COMMIT_TIME, event_time):
            if c not in cols or md.schema.column(cols[c]).physical_type != "INT64" or json.loads(
                    md.schema.column(cols[c]).logical_type.to_json()).get("timeUnit") != "microseconds":
                return None
        commit = None
        for r in range(md.num_row_groups):
            rg = md.row_group(r)
            if rg.num_rows == 0:
                continue
            cs, es = rg.column(cols[COMMIT_TIME]).statistics, rg.column(cols[event_time]).statistics
            if cs is None or es is None or not cs.has_min_max or not cs.has_null_count \
                    or cs.null_count or cs.min_raw != cs.max_raw or commit not in (None, cs.min_raw):
                return None
            commit = cs.min_raw
            if es.has_min_max:
                lo = es.min_raw if lo is None else min(lo, es.min_raw)
                hi = es.max_raw if hi is None else max(hi, es.max_raw)
            elif not (es.has_null_count and es.null_count == rg.num_rows):
                return None
        if commit is not None:
            by_commit.setdefault(commit, []).append(path)
    if lo is None or hi is None:
        return None
    return lo, hi, [by_commit[c] for c in sorted(by_commit)]


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join(sql_literal(p) for p in paths) + "]"


__all__ = ["KEY_SQL", "q", "local_paths", "parquet_positions", "wide_positions",
           "commit_layout"]
