"""The tiled window algorithm, written once as SQL that Spark and DuckDB both run.

See the package docstring (``sparkfs.aggregations``) for the semantics and the algorithm.
This module turns a group's aggregations into one SQL query over two relations:

``ev``  one row per history event: ``_k0.._kn`` (join keys), ``_et`` and ``_ct`` (event and
        commit time, integer microseconds since the epoch) and one value column ``_v{i}``
        per distinct (column, filter) input, null when the event is not kept.
``sp``  one row per spine row: ``_spine_id``, ``_k0.._kn``, ``_t`` (microseconds).

The result has ``_spine_id`` and one column per requested feature. Only the few spots
where the two SQL dialects differ go through a ``Dialect``.

>>> from sparkfs.definitions import Aggregation
>>> tile_size(Aggregation("x", "sum", ["7d"]).window_durations["7d"])
(25200000000, 24)
>>> plan = AggregationPlan.build(_demo_group(), ["dep_delay_mean_1d", "dep_delay_count_1d"])
>>> [(s.label, s.tile_us, s.tiles) for s in plan.windows]
[('1d', 3600000000, 24)]
>>> "GROUP BY _spine_id" in plan.sql(DUCKDB, as_known_at=False)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from ..definitions import Aggregation, FeatureGroup
from ..dtypes import ALL
from ..errors import DefinitionError, NotFoundError
from ..sql import quote_ident

#: Most tiles per window. Each window of length W is cut into ``m`` equal tiles
#: (``m`` the largest divisor of W in microseconds that is at most this).
MAX_TILES = 24

#: Partial aggregates a function needs (merged by SUM, MIN or MAX).
NEEDS = {
    "count": ("n",),
    "sum": ("n", "s"),
    "mean": ("n", "s"),
    "stddev": ("n", "d1", "d2", "mn", "mx"),
    "min": ("mn",),
    "max": ("mx",),
    "last": ("l",),
}
_PARTIAL_ORDER = ("n", "s", "d1", "d2", "mn", "mx", "l")
_MERGE = {"n": "SUM", "s": "SUM", "d1": "SUM", "d2": "SUM", "mn": "MIN", "mx": "MAX", "l": "MAX"}


def tile_size(window: timedelta) -> tuple[int, int]:
    """``(tile length in µs, tiles per window)`` for a window: the window is cut into the
    largest number of equal whole-microsecond tiles that is at most ``MAX_TILES``."""
    w_us = window // timedelta(microseconds=1)
    m = max(d for d in range(1, MAX_TILES + 1) if w_us % d == 0)
    return w_us // m, m


@dataclass(frozen=True)
class Dialect:
    """The few spellings that differ between Spark SQL and DuckDB."""

    name: str
    quote_char: str
    struct_fmt: str       # struct of (e, c, v), ordered field by field
    field_fmt: str        # field v of a struct expression
    micros_fmt: str       # timestamp -> integer microseconds since the epoch

    def q(self, name: str) -> str:
        """``name`` quoted and escaped for this dialect (``sparkfs.sql.quote_ident``)."""
        return quote_ident(name, self.name)

    def struct(self, e: str, c: str, v: str) -> str:
        return self.struct_fmt.format(e=e, c=c, v=v)

    def field_v(self, expr: str) -> str:
        return self.field_fmt.format(x=expr)

    def micros(self, expr: str) -> str:
        return self.micros_fmt.format(x=expr)

    def type(self, dtype: str) -> str:
        return ALL[dtype].spark if self.name == "spark" else ALL[dtype].duckdb


SPARK = Dialect("spark", "`", "named_struct('e', {e}, 'c', {c}, 'v', {v})", "({x}).v",
                "unix_micros(CAST({x} AS TIMESTAMP))")
DUCKDB = Dialect("duckdb", '"', "struct_pack(e := {e}, c := {c}, v := {v})",
                 "struct_extract({x}, 'v')", "epoch_us(CAST({x} AS TIMESTAMPTZ))")


@dataclass(frozen=True)
class Input:
    """One distinct (column, filter) pair: the values an aggregation sees."""

    index: int
    column: str
    filter: str | None
    dtype: str

    @property
    def numeric_type(self) -> str:
        """The dtype sums are taken in: exact integers, else double."""
        return ALL[self.dtype].sum_as


@dataclass(frozen=True)
class Output:
    name: str
    function: str
    input: Input
    dtype: str


@dataclass
class WindowStep:
    label: str
    duration: timedelta
    tile_us: int
    tiles: int
    outputs: list[Output] = field(default_factory=list)

    @property
    def window_us(self) -> int:
        return self.tile_us * self.tiles


@dataclass
class AggregationPlan:
    """What to compute for a group and a list of requested aggregate features."""

    group: FeatureGroup
    inputs: list[Input]
    windows: list[WindowStep]
    features: list[str]

    @classmethod
    def build(cls, group: FeatureGroup, features: Sequence[str] | None = None) -> "AggregationPlan":
        if not group.aggregations:
            raise DefinitionError(
                f"feature group {group.name!r} declares no aggregations; read its features "
                "with a point-in-time join instead")
        by_name: dict[str, tuple[Aggregation, str]] = {
            a.feature_name(w): (a, w) for a in group.aggregations for w in a.windows}
        wanted = list(by_name) if features is None else list(features)
        unknown = [f for f in wanted if f not in by_name]
        if unknown:
            raise NotFoundError(
                f"feature group {group.name!r} version {group.version} has no aggregate "
                f"feature(s) {unknown}; it has: {', '.join(by_name)}")
        if len(set(wanted)) != len(wanted):
            raise DefinitionError(f"features {wanted} name the same aggregate twice")
        dtypes = {f.name: f.dtype for f in group.stored_fields}
        inputs: dict[tuple[str, str | None], Input] = {}
        steps: dict[timedelta, WindowStep] = {}
        for name in wanted:
            agg, label = by_name[name]
            key = (agg.column, agg.filter)
            if key not in inputs:
                inputs[key] = Input(len(inputs), agg.column, agg.filter, dtypes[agg.column])
            duration = agg.window_durations[label]
            if duration not in steps:
                tile_us, m = tile_size(duration)
                steps[duration] = WindowStep(label, duration, tile_us, m)
            steps[duration].outputs.append(
                Output(name, agg.function, inputs[key], agg.output_dtype(dtypes[agg.column])))
        return cls(group, list(inputs.values()), list(steps.values()), wanted)

    # -- the relations the engines prepare ------------------------------------------------
    def event_select(self, d: Dialect) -> list[str]:
        """SELECT expressions turning a history row into an ``ev`` row."""
        g = self.group
        cols = [f"{d.q(k)} AS _k{i}" for i, k in enumerate(g.join_keys)]
        cols.append(f"{d.micros(d.q(g.event_time))} AS _et")
        cols.append(f"{d.micros(d.q('_commit_time'))} AS _ct")
        for inp in self.inputs:
            value = d.q(inp.column)
            if inp.filter is not None:
                value = f"CASE WHEN {d.q(inp.filter)} THEN {value} END"
            cols.append(f"{value} AS _v{inp.index}")
        return cols

    def spine_select(self, d: Dialect, spine_keys: Sequence[str], timestamp_col: str) -> list[str]:
        """SELECT expressions turning a spine row into an ``sp`` row."""
        key_types = [d.type(t) for t in self.group.key_dtypes.values()]
        cols = ["_spine_id"] + [f"CAST({d.q(k)} AS {t}) AS _k{i}"
                                for i, (k, t) in enumerate(zip(spine_keys, key_types))]
        cols.append(f"{d.micros(d.q(timestamp_col))} AS _t")
        return cols

    # -- the query --------------------------------------------------------------------------
    def sql(self, d: Dialect, as_known_at: bool, history: str | None = None,
            spine: str | None = None, spine_keys: Sequence[str] = (),
            timestamp_col: str = "") -> str:
        """One query over relations named ``ev`` and ``sp`` (see the module docstring).
        Given ``history`` and ``spine`` (relation names), ``ev`` and ``sp`` are defined
        from them first."""
        nk = len(self.group.join_keys)
        keys = [f"_k{i}" for i in range(nk)]
        ev, sp = "ev", "sp"
        ctes = []
        if history is not None:
            ctes.append(f"ev AS (SELECT {', '.join(self.event_select(d))} FROM {history})")
        if spine is not None:
            cols = self.spine_select(d, spine_keys, timestamp_col)
            ctes.append(f"sp AS (SELECT {', '.join(cols)} FROM {spine})")
        if self._needs_shift():
            ctes.append(self._shift_cte(ev))
        for j, step in enumerate(self.windows):
            ctes += self._window_ctes(d, j, step, keys, as_known_at, ev, sp)
        select = ["s._spine_id"]
        joins = []
        for j in range(len(self.windows)):
            joins.append(f"LEFT JOIN agg_{j} a{j} ON a{j}._spine_id = s._spine_id")
        for name in self.features:
            j, out = self._find(name)
            expr = f"a{j}.{d.q(name)}"
            if out.function == "count":
                expr = f"COALESCE({expr}, 0)"
            select.append(f"{expr} AS {d.q(name)}")
        return ("WITH " + ",\n".join(ctes) + f"\nSELECT {', '.join(select)}\nFROM {sp} s\n"
                + "\n".join(joins))

    def _find(self, name: str) -> tuple[int, Output]:
        for j, step in enumerate(self.windows):
            for out in step.outputs:
                if out.name == name:
                    return j, out
        raise KeyError(name)  # pragma: no cover - build() checked the names

    def _needs_shift(self) -> bool:
        """Only the stddev partials use the shift (one more pass over the history)."""
        return any(p in ("d1", "d2") for step in self.windows for p, _ in self._partials(step))

    def _shift_cte(self, ev: str) -> str:
        # Per-input shift (the history mean) keeps sums of squares well conditioned.
        cols = [f"AVG(CAST(_v{i.index} AS DOUBLE)) AS _sh{i.index}" for i in self.inputs]
        cols = cols or ["0 AS _none"]
        return f"shift AS (SELECT {', '.join(cols)} FROM {ev})"

    def _partials(self, step: WindowStep) -> list[tuple[str, Input]]:
        out: list[tuple[str, Input]] = []
        for o in step.outputs:
            for p in NEEDS[o.function]:
                if (p, o.input) not in out:
                    out.append((p, o.input))
        return sorted(out, key=lambda pi: (pi[1].index, _PARTIAL_ORDER.index(pi[0])))

    def _row_partial(self, d: Dialect, p: str, inp: Input, alias: str) -> str:
        """The partial ``p`` of a single event row (``alias`` is the event relation)."""
        v = f"{alias}._v{inp.index}"
        num = f"CAST({v} AS {d.type(inp.numeric_type)})"
        dv = f"(CAST({v} AS DOUBLE) - sh._sh{inp.index})"
        return {
            "n": f"CASE WHEN {v} IS NULL THEN 0 ELSE 1 END",
            "s": num,
            "d1": dv,
            "d2": f"{dv} * {dv}",
            "mn": v,
            "mx": v,
            "l": f"CASE WHEN {v} IS NOT NULL THEN {d.struct(alias + '._et', alias + '._ct', v)} END",
        }[p]

    def _window_ctes(self, d: Dialect, j: int, step: WindowStep, keys: list[str],
                     as_known_at: bool, ev: str, sp: str) -> list[str]:
        T, m, W = step.tile_us, step.tiles, step.window_us
        T2, m2 = tile_size(timedelta(microseconds=T))  # sub-tiles of each tile
        M = m * m2  # sub-tiles per window
        partials = self._partials(step)
        pnames = [f"{p}{inp.index}" for p, inp in partials]
        keycols = ", ".join(keys)
        shift = " CROSS JOIN shift sh" if self._needs_shift() else ""
        qkeys = ", ".join("q." + k for k in keys)

        def on(a: str, b: str) -> str:
            return " AND ".join(f"{a}.{k} = {b}.{k}" for k in keys)

        def row_partials(alias: str) -> str:
            return ", ".join(f"{self._row_partial(d, p, inp, alias)} AS {p}{inp.index}"
                             for p, inp in partials)

        def merged(alias: str) -> str:
            return ", ".join(f"{_MERGE[p]}({alias}.{p}{inp.index}) AS {p}{inp.index}"
                             for p, inp in partials)

        def offsets(name: str, n: int) -> str:
            return f"{name} AS ({' UNION ALL '.join(f'SELECT {i} AS o' for i in range(1, n))})"

        def tiles(name: str, k: str, c: str) -> str:
            by = f"{keycols}, {k}" + (f", {c}" if as_known_at else "")
            return (f"{name} AS (SELECT {by}, {merged_rows(self, d, partials)} "
                    f"FROM ev_{j} e{shift} GROUP BY {by})")

        def edge(cond: str, key: str = "") -> str:
            return (f"SELECT s._spine_id, {row_partials('e')} FROM sp_{j} s JOIN ev_{j} e "
                    f"ON {on('e', 's')}{key} AND {cond}{shift}")

        ctes = [
            f"sp_{j} AS (SELECT _spine_id, {keycols}, _t, "
            f"CAST(FLOOR((_t - 1) / {T}) AS BIGINT) AS _kt, "
            f"CAST(FLOOR((_t - 1) / {T2}) AS BIGINT) AS _kt2 FROM {sp})",
            f"ev_{j} AS (SELECT e.*, CAST(FLOOR((_et - 1) / {T}) AS BIGINT) AS _k, "
            f"CAST(FLOOR((_ct - 1) / {T}) AS BIGINT) AS _c, "
            f"CAST(FLOOR((_et - 1) / {T2}) AS BIGINT) AS _k2, "
            f"CAST(FLOOR((_ct - 1) / {T2}) AS BIGINT) AS _c2 FROM {ev} e)",
        ]
        union = []
        if m > 1:  # level 1: the m - 1 whole tiles between the partial ones
            ctes.append(tiles(f"tiles_{j}", "_k", "_c"))
            ctes.append(offsets(f"off_{j}", m))
            ctes.append(f"q_{j} AS (SELECT DISTINCT {keycols}, _kt FROM sp_{j})")
            known = " AND t._c < q._kt" if as_known_at else ""
            ctes.append(
                f"full_{j} AS (SELECT {qkeys}, q._kt, {merged('t')} "
                f"FROM (SELECT q.*, q._kt - o.o AS _want FROM q_{j} q CROSS JOIN off_{j} o) q "
                f"JOIN tiles_{j} t ON {on('t', 'q')} AND t._k = q._want{known} "
                f"GROUP BY {qkeys}, q._kt)")
            union.append(f"SELECT s._spine_id, {', '.join('f.' + p for p in pnames)} "
                         f"FROM sp_{j} s JOIN full_{j} f ON {on('f', 's')} AND f._kt = s._kt")
        if m2 > 1:  # level 2: whole sub-tiles of the two partial tiles
            # With r = kt2 - kt*m2, the tail tile kt has sub-tiles kt2-1 .. kt2-r and the
            # head tile kt-m has kt2-M+1 .. kt2-M+(m2-1-r): m2 - 1 sub-tiles in all.
            ctes.append(tiles(f"subs_{j}", "_k2", "_c2"))
            ctes.append(offsets(f"off2_{j}", m2))
            ctes.append(f"q2_{j} AS (SELECT DISTINCT {keycols}, _kt, _kt2 FROM sp_{j})")
            known = " AND t._c2 < q._kt2" if as_known_at else ""
            r = f"(q._kt2 - q._kt * {m2})"
            ctes.append(
                f"part_{j} AS (SELECT {qkeys}, q._kt2, {merged('t')} "
                f"FROM (SELECT q.*, CASE WHEN o.o <= {r} THEN q._kt2 - o.o "
                f"ELSE q._kt2 - {M} + (o.o - {r}) END AS _want "
                f"FROM q2_{j} q CROSS JOIN off2_{j} o) q "
                f"JOIN subs_{j} t ON {on('t', 'q')} AND t._k2 = q._want{known} "
                f"GROUP BY {qkeys}, q._kt2)")
            union.append(f"SELECT s._spine_id, {', '.join('f.' + p for p in pnames)} "
                         f"FROM sp_{j} s JOIN part_{j} f ON {on('f', 's')} AND f._kt2 = s._kt2")
        known_ct = " AND e._ct <= s._t" if as_known_at else ""
        # Raw edges: the events of the head and tail sub-tiles inside (t - W, t].
        union.append(edge(f"e._et > s._t - {W}{known_ct}", f" AND e._k2 = s._kt2 - {M}"))
        union.append(edge(f"e._et <= s._t{known_ct}", " AND e._k2 = s._kt2"))
        if as_known_at:
            # Events of whole tiles / sub-tiles committed during the spine row's own tile /
            # sub-tile: checked one by one.
            if m > 1:
                union.append(edge(f"e._k > s._kt - {m} AND e._k < s._kt AND e._ct <= s._t",
                                  " AND e._c = s._kt"))
            if m2 > 1:
                union.append(edge(
                    f"((e._k = s._kt - {m} AND e._k2 > s._kt2 - {M}) "
                    f"OR (e._k = s._kt AND e._k2 < s._kt2)) AND e._ct <= s._t",
                    " AND e._c2 = s._kt2"))
        ctes.append(f"parts_{j} AS ({' UNION ALL '.join(union)})")
        finals = ", ".join(f"{_final(d, o)} AS {d.q(o.name)}" for o in step.outputs)
        ctes.append(f"agg_{j} AS (SELECT _spine_id, {finals} FROM parts_{j} GROUP BY _spine_id)")
        return ctes


def merged_rows(plan: AggregationPlan, d: Dialect, partials: list[tuple[str, Input]]) -> str:
    """Partials of a tile: the merge of its events' row partials."""
    return ", ".join(f"{_MERGE[p]}({plan._row_partial(d, p, inp, 'e')}) AS {p}{inp.index}"
                     for p, inp in partials)


def _final(d: Dialect, o: Output, prefix: str = "") -> str:
    """The aggregate expression turning merged partials (columns ``{prefix}n{i}``,
    ``{prefix}s{i}``, ...) into the value of output ``o``."""
    i = f"{o.input.index}"
    n = f"SUM({prefix}n{i})"
    out_type = d.type(o.dtype)
    if o.function == "count":
        return f"CAST({n} AS BIGINT)"
    if o.function == "sum":
        return f"CASE WHEN {n} > 0 THEN CAST(SUM({prefix}s{i}) AS {out_type}) END"
    if o.function == "mean":
        return f"CASE WHEN {n} > 0 THEN CAST(SUM({prefix}s{i}) AS DOUBLE) / {n} END"
    if o.function == "stddev":
        d1, d2 = f"SUM({prefix}d1{i})", f"SUM({prefix}d2{i})"
        var = f"({d2} - {d1} * {d1} / {n}) / ({n} - 1)"
        # equal values give exactly 0 (the sums of squares leave ~1e-8 there), as the
        # online path's two-pass formula does; NaN and infinities take the formula (NaN)
        lo, hi = f"MIN({prefix}mn{i})", f"MAX({prefix}mx{i})"
        same = f"{lo} = {hi} AND CAST({hi} AS DOUBLE) - CAST({lo} AS DOUBLE) = 0"
        return f"CASE WHEN {n} > 1 THEN CASE WHEN {same} THEN 0.0 ELSE SQRT(GREATEST({var}, 0.0)) END END"
    if o.function == "min":
        return f"CAST(MIN({prefix}mn{i}) AS {out_type})"
    if o.function == "max":
        return f"CAST(MAX({prefix}mx{i}) AS {out_type})"
    if o.function == "last":
        return f"CAST({d.field_v(f'MAX({prefix}l{i})')} AS {out_type})"
    raise DefinitionError(f"unknown aggregation function {o.function!r}")  # pragma: no cover


def _demo_group() -> FeatureGroup:
    from ..definitions import Entity, Field

    carrier = Entity("carrier", join_keys=["carrier"])
    return FeatureGroup(
        name="carrier_delays", entities=[carrier], event_time="dep_ts",
        schema=[Field("dep_delay", "double")],
        aggregations=[Aggregation("dep_delay", "mean", ["1d"]),
                      Aggregation("dep_delay", "count", ["1d"])])


def resolve_keys(group: FeatureGroup, join_keys: Sequence[str] | dict | None,
                 spine_columns: Sequence[str]) -> list[str]:
    """The spine columns that hold the group's join keys, in the group's key order.

    ``join_keys`` is a sequence of spine column names aligned with ``group.join_keys``, a
    mapping ``{group_key: spine_column}``, or None (the spine uses the group's names).
    """
    if join_keys is None:
        cols = list(group.join_keys)
    elif isinstance(join_keys, dict):
        cols = [join_keys.get(k, k) for k in group.join_keys]
    else:
        cols = list(join_keys)
    if len(cols) != len(group.join_keys):
        raise DefinitionError(
            f"feature group {group.name!r} has join keys {list(group.join_keys)}, but "
            f"{len(cols)} spine key column(s) were given: {cols}")
    missing = [c for c in cols if c not in spine_columns]
    if missing:
        raise NotFoundError(
            f"the spine has no column(s) {missing} for the join keys of feature group "
            f"{group.name!r}; it has: {list(spine_columns)}")
    return cols


def check_history_columns(plan: AggregationPlan, columns: Sequence[str]) -> None:
    g = plan.group
    need = list(g.join_keys) + [g.event_time, "_commit_time"]
    need += [i.column for i in plan.inputs] + [i.filter for i in plan.inputs if i.filter]
    missing = [c for c in dict.fromkeys(need) if c not in columns]
    if missing:
        raise NotFoundError(
            f"the history of feature group {g.name!r} lacks column(s) {missing}; pass the "
            "group's Delta history (fs.offline.read_spark / read_arrow)")
