"""Windowed aggregates with running window functions over aligned chunks (the Spark plan).

The tiled plan (``plan.py``) joins tiles and edge events to each spine row: about eight
shuffles per window in Spark. Without ``as_known_at`` there is a plan with one shuffle
for all windows, exact for every function (it only ever merges the partials of disjoint
event sets, it never subtracts):

Cut time into chunks of exactly the window length ``W``: chunk ``c`` is ``(cW, (c+1)W]``,
so an instant ``x`` lies in chunk ``floor((x - 1) / W)``. For a spine time ``t`` in chunk
``c``, the instant ``t - W`` lies in chunk ``c - 1``, and the window is

    (t - W, t]  =  {events of chunk c - 1 later than t - W}  +  {events of chunk c up to t}
                   (a suffix of chunk c - 1)                     (a prefix of chunk c)

(the van Herk / Gil-Werman decomposition of a sliding window). Both parts are *running*
aggregates within (key, chunk): a prefix in time order and a suffix in reverse time
order, each O(1) per row in Spark's running window frame. So:

1. Union the kept events with two kinds of probe rows that carry no value: a *tail*
   probe at ``t`` for every spine row, and a *head* probe at ``t - W`` for every spine row
   and window. Distribute the union by key once.
2. Per window, one ascending and one descending running aggregate within (key, chunk)
   of the row partials (count, sum, shifted power sums, min, max, latest (event time,
   commit time, value)). Probes sort after the events of the same instant going up
   (events *at* ``t`` are in) and before them going down (events *at* ``t - W`` are out).
3. Keep the probe rows; per spine row, merge window ``W``'s prefix at its tail probe with
   its suffix at its head probe, and finish the values (``plan._final``).

Cost: one shuffle of events + (1 + windows) x spine rows, two local sorts per window,
one aggregation of the probe rows by spine row; it grows with the rows, not with the
events per window. A key's rows share one partition (the running frames spill to disk,
so a hot key is slow but not fatal). With ``as_known_at`` an event also needs
``_commit_time <= t``, which is not a prefix of anything: that mode runs the tiled plan.

>>> from sparkfs.aggregations.plan import SPARK, AggregationPlan, _demo_group
>>> sql = sliding_sql(AggregationPlan.build(_demo_group()), SPARK, "h", "s", ["carrier"], "ts")
>>> "ORDER BY _x DESC, _f DESC ROWS BETWEEN UNBOUNDED PRECEDING" in sql
True
"""

from __future__ import annotations

from collections.abc import Sequence

from .plan import _MERGE, AggregationPlan, Dialect, Input, _final

_FRAME = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


def sliding_sql(plan: AggregationPlan, d: Dialect, history: str, spine: str,
                spine_keys: Sequence[str], timestamp_col: str,
                distribute_by_key: bool = False) -> str:
    """One query over the relations ``history`` and ``spine``: ``_spine_id`` + one column
    per requested feature, one row per spine row (no ``as_known_at``).
    ``distribute_by_key`` adds Spark's ``DISTRIBUTE BY`` so every window shares one
    shuffle."""
    keys = [f"_k{i}" for i in range(len(plan.group.join_keys))]
    keycols = ", ".join(keys)
    ctes = [f"ev AS (SELECT {', '.join(plan.event_select(d))} FROM {history})",
            f"sp AS (SELECT {', '.join(plan.spine_select(d, spine_keys, timestamp_col))} "
            f"FROM {spine})"]
    shift = ""
    if plan._needs_shift():
        ctes.append(plan._shift_cte("ev"))
        shift = " CROSS JOIN shift sh"
    partials = _all_partials(plan)
    row = ", ".join(f"{plan._row_partial(d, p, inp, 'e')} AS {p}{inp.index}" for p, inp in partials)
    blank = ", ".join(f"NULL AS {p}{inp.index}" for p, inp in partials)
    kept = " AND ".join(f"e.{c} IS NOT NULL" for c in keys + ["_et"])
    ekeys = ", ".join(f"e.{k}" for k in keys)
    branches = [f"SELECT {ekeys}, e._et AS _x, 0 AS _f, CAST(NULL AS BIGINT) AS _spine_id, "
                f"-1 AS _j, {row} FROM ev e{shift} WHERE {kept}",
                f"SELECT {keycols}, _t AS _x, 1 AS _f, _spine_id, -1 AS _j, {blank} FROM sp"]
    branches += [f"SELECT {keycols}, _t - {step.window_us} AS _x, 1 AS _f, _spine_id, "
                 f"{j} AS _j, {blank} FROM sp" for j, step in enumerate(plan.windows)]
    union = " UNION ALL ".join(branches)
    if distribute_by_key:
        union = f"SELECT * FROM ({union}) DISTRIBUTE BY {keycols}"
    ctes.append(f"u AS ({union})")

    running = []
    for j, step in enumerate(plan.windows):
        part = f"PARTITION BY {keycols}, CAST(FLOOR((_x - 1) / {step.window_us}) AS BIGINT)"
        up = f"OVER ({part} ORDER BY _x, _f {_FRAME})"
        down = f"OVER ({part} ORDER BY _x DESC, _f DESC {_FRAME})"
        for p, inp in plan._partials(step):
            c, m = f"{p}{inp.index}", _MERGE[p]
            running.append(f"CASE WHEN _j = -1 THEN {m}({c}) {up} "
                           f"WHEN _j = {j} THEN {m}({c}) {down} END AS w{j}_{c}")
    ctes.append(f"w AS (SELECT _f, _spine_id, {', '.join(running)} FROM u)")

    select = ["_spine_id"]
    for name in plan.features:
        j, out = plan._find(name)
        expr = _final(d, out, prefix=f"w{j}_")
        if out.function == "count":
            expr = f"COALESCE({expr}, 0)"
        select.append(f"{expr} AS {d.q(name)}")
    return ("WITH " + ",\n".join(ctes) + f"\nSELECT {', '.join(select)}\nFROM w WHERE _f = 1 "
            "GROUP BY _spine_id")


def _all_partials(plan: AggregationPlan) -> list[tuple[str, Input]]:
    out: list[tuple[str, Input]] = []
    for step in plan.windows:
        out += [pi for pi in plan._partials(step) if pi not in out]
    return out
