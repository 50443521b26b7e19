"""Evaluation-log columns built column-wise: what the log writer turns into Arrow.

A request hands the writer columns, not rows: plain value lists, ``Repeat`` (one value
per request: its id, time, model) and ``JsonColumn`` (the ``entity``, ``request_data``
and ``prediction_json`` text, left unbuilt). ``merge_columns`` joins the parts of every
request of one append, so each column is converted once: the JSON text with Arrow and
numpy kernels (``json_values``, ``json_objects``: the exact text ``json.dumps(v,
default=str)`` writes, NaN and None included), a repeat by converting its few values and
a ``take``.

>>> merge_columns([{"a": [1], "j": JsonColumn(1, values=["x"])},
...                {"a": [2], "j": JsonColumn(1, values=[None])}])["j"].array().to_pylist()
['"x"', 'null']
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: The characters ``json.dumps`` escapes in a string (``ensure_ascii``): Python's own
#: ``json.encoder.ESCAPE_ASCII`` pattern, in RE2 syntax.
_ESCAPE = r'[\\"]|[^ -~]'
_NONFINITE = {"nan": ("NaN", "null"), "inf": ("Infinity", "null"),
              "-inf": ("-Infinity", "null")}


def json_values(values: Sequence[Any], finite_only: bool = False) -> pa.Array:
    """The JSON text of each value, as ``json.dumps(v, default=str)`` writes it, built
    column-wise (Arrow and numpy kernels) when the values share one plain type (str, int,
    float, bool, with None): no ``json.dumps`` per value (floats take ``float.__repr__``,
    the text ``json.dumps`` writes, mapped over the list). Other values (timestamps, lists,
    mixed types) are written one by one with ``json.dumps``, so the text is the same either
    way. ``finite_only``: NaN and infinities as ``null`` (``_json_safe``'s rule), not as
    ``NaN``/``Infinity``.

    >>> json_values(["JFK", 'a"b', None, "é"]).to_pylist()
    ['"JFK"', '"a\\\\"b"', 'null', '"\\\\u00e9"']
    >>> json_values([1.5, 5.0, float("nan"), 1e-07]).to_pylist()
    ['1.5', '5.0', 'NaN', '1e-07']
    >>> json_values([1.5, float("inf")], finite_only=True).to_pylist()
    ['1.5', 'null']
    """
    import numpy as np

    vals = values if isinstance(values, list) else list(values)
    n = len(vals)
    kinds = set(map(type, vals))
    kinds.discard(type(None))
    nulls = None
    if len(kinds) == 1 or not kinds:
        kind = next(iter(kinds), type(None))
        if kind is type(None):
            return pa.array(["null"] * n, pa.string())
        if kind is str:
            arr = pa.array(vals, pa.string())
            out = _str_text(arr)
            nulls = arr
        elif kind is bool:
            arr = pa.array(vals, pa.bool_())
            out = pc.if_else(arr, "true", "false")
            nulls = arr
        elif kind is int:
            try:
                arr = pa.array(vals, pa.int64())
            except (OverflowError, pa.ArrowException):
                return _json_each(vals, finite_only)
            out = pc.cast(arr, pa.string())
            nulls = arr
        elif kind in (float, np.float64):  # json.dumps writes float.__repr__ of a float
            arr = pa.array(vals, pa.float64(), from_pandas=False)
            out = float_text(arr, vals, finite_only)
            nulls = arr
    if nulls is None:
        return _json_each(vals, finite_only)
    if nulls.null_count:
        out = pc.if_else(nulls.is_null(), "null", out)
    return out


def _str_text(arr: pa.Array, head: str = "", tail: str = "") -> pa.Array:
    """``head`` + the JSON text of each string + ``tail`` (null stays null). Built for
    the distinct strings only, then repeated (``take``): a log's keys and timestamps
    repeat across its rows."""
    import numpy as np

    enc = pc.dictionary_encode(arr)
    uniq = enc.dictionary
    text = pc.binary_join_element_wise(head + '"', uniq, '"' + tail, "")
    special = pc.match_substring_regex(uniq, _ESCAPE)
    if pc.any(special).as_py():  # quotes, backslashes, control or non-ASCII
        fixed = text.to_pylist()
        for i in np.flatnonzero(special.to_numpy(zero_copy_only=False)).tolist():
            fixed[i] = head + json.dumps(uniq[i].as_py()) + tail
        text = pa.array(fixed, pa.string())
    return text.take(enc.indices)


def float_text(arr: pa.Array, vals: Sequence[Any] | None = None,
               finite_only: bool = False) -> pa.Array:
    """``float.__repr__`` of each value of a float64 array (the text ``json.dumps``
    writes; null stays null; NaN and infinities as ``json.dumps`` writes them, or ``null``
    with ``finite_only``), built by Arrow's cast: it writes the same shortest round-trip
    digits as ``repr``, in the same layout for every value ``repr`` writes without an
    exponent (1e-4 <= |x| < 1e16, and 0) except the ``.0`` of a whole number, which is
    added. The values it lays out otherwise (an exponent), and non-finite ones, take
    ``float.__repr__`` one by one. ``vals``: the same values as Python floats, if at hand.

    >>> float_text(pa.array([1.5, 5.0, None, 1e-07, 0.1, -0.0, 1e16])).to_pylist()
    ['1.5', '5.0', None, '1e-07', '0.1', '-0.0', '1e+16']
    """
    import numpy as np

    text = pc.cast(arr, pa.string())
    nums = arr.to_numpy(zero_copy_only=False)  # nulls -> NaN: laid out one by one
    mag = np.abs(nums)
    plain = ((mag >= 1e-4) & (mag < 1e16)) | (nums == 0)
    plain &= ~pc.match_substring(text, "e").fill_null(True).to_numpy(zero_copy_only=False)
    text = pc.if_else(pc.match_substring(text, "."), text,
                      pc.binary_join_element_wise(text, ".0", ""))
    other = np.flatnonzero(~plain)
    if not other.size:
        return text
    fixed = text.to_pylist()
    which = 1 if finite_only else 0
    for i in other.tolist():
        v = vals[i] if vals is not None else arr[i].as_py()
        if v is None:
            continue
        r = float.__repr__(v)
        fixed[i] = r if math.isfinite(v) else _NONFINITE[r][which]
    return pa.array(fixed, pa.string())


def _json_each(vals: list, finite_only: bool) -> pa.Array:
    if finite_only:
        return pa.array([json.dumps(json_safe(v), default=str) for v in vals], pa.string())
    return pa.array([json.dumps(v, default=str) for v in vals], pa.string())


def json_safe(v: Any) -> Any:
    """``v`` as plain JSON keeps it: a NaN or infinity becomes None, a date or time its ISO
    text (the log's ``prediction_json`` and the predict response's values).

    >>> json_safe(float("nan")), json_safe(1.5)
    (None, 1.5)
    """
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return v


def json_objects(columns: Mapping[str, Sequence[Any]], n: int) -> pa.Array:
    """One JSON object per row of ``columns`` (``{name: values}``), the text
    ``json.dumps(dict(zip(names, row)), default=str)`` gives, built column-wise
    (``json_values`` per column, then one string join).

    >>> json_objects({"origin": ["JFK", "LGA"], "n": [1, None]}, 2).to_pylist()
    ['{"origin": "JFK", "n": 1}', '{"origin": "LGA", "n": null}']
    >>> json_objects({}, 2).to_pylist()
    ['{}', '{}']
    """
    if not columns:
        return pa.array(["{}"] * n, pa.string())
    if len(columns) == 1:  # one text column (a key, a timestamp): built per distinct value
        (name, values), = columns.items()
        vals = values if isinstance(values, list) else list(values)
        kinds = set(map(type, vals))
        kinds.discard(type(None))
        if kinds == {str}:
            head = "{" + json.dumps(str(name)) + ": "
            arr = pa.array(vals, pa.string())
            out = _str_text(arr, head, "}")
            return pc.if_else(arr.is_null(), head + "null}", out) if arr.null_count else out
    parts: list[Any] = []
    for i, (name, values) in enumerate(columns.items()):
        parts.append(("{" if i == 0 else ", ") + json.dumps(str(name)) + ": ")
        parts.append(json_values(values))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


_DATETIMES = {dt.datetime, type(None)}


def timestamp_array(values: list, type_: pa.DataType) -> pa.Array:
    """``pa.array(values, type_)`` for a list of datetimes (None: null) and a timestamp
    type, converted by pandas (one vectorized pass; Arrow converts an aware datetime per
    value through Python). Lists pandas cannot take as one index (other value types,
    naive mixed with aware, several UTC offsets, years beyond pandas' range) go to
    ``pa.array`` as they are.

    >>> T = pa.timestamp("us", "UTC")
    >>> t = dt.datetime(2013, 1, 1, tzinfo=dt.UTC)
    >>> timestamp_array([t, None], T).to_pylist() == [t, None]
    True
    """
    import pandas as pd

    kinds = set(map(type, values))
    if kinds <= _DATETIMES and dt.datetime in kinds:
        try:
            return pa.Array.from_pandas(pd.DatetimeIndex(values)).cast(type_)
        except (ValueError, TypeError, OverflowError, pa.ArrowException):
            pass
    return pa.array(values, type_)


class JsonColumn:
    """A log column of JSON text left unbuilt until the writer appends: ``objects``
    (``{name: values}``: one JSON object per row, ``json_objects``; None: null rows) or
    ``values`` (the JSON of each value, ``json_values``). The writer joins the parts of
    many requests first and builds the text once for all of them."""

    __slots__ = ("objects", "values", "n", "finite_only")

    def __init__(self, n: int, objects: Mapping[str, Sequence[Any]] | None = None,
                 values: Sequence[Any] | None = None, finite_only: bool = False,
                 null: bool = False) -> None:
        self.n = n
        self.objects = None if objects is None else {k: list(v) for k, v in objects.items()}
        self.values = None if values is None else list(values)
        self.finite_only = finite_only
        if objects is None and values is None and not null:
            raise ValueError("JsonColumn needs objects, values or null=True")

    def shape(self) -> tuple:
        """What must agree for two parts to be built as one."""
        if self.objects is not None:
            return ("objects", tuple(self.objects))
        if self.values is not None:
            return ("values", self.finite_only)
        return ("null",)

    @staticmethod
    def join(parts: list[JsonColumn]) -> JsonColumn:
        """One column of parts with equal ``shape()``."""
        first, n = parts[0], sum(p.n for p in parts)
        if first.objects is not None:
            return JsonColumn(n, objects={k: list(chain.from_iterable(
                (p.objects or {})[k] for p in parts)) for k in first.objects})
        if first.values is not None:
            return JsonColumn(n, values=list(chain.from_iterable(p.values or () for p in parts)),
                              finite_only=first.finite_only)
        return JsonColumn(n, null=True)

    def array(self) -> pa.Array:
        if self.objects is not None:
            return json_objects(self.objects, self.n)
        if self.values is not None:
            return json_values(self.values, self.finite_only)
        return pa.nulls(self.n, pa.string())


class Repeat:
    """A log column that holds one value per request: ``values[i]`` repeated
    ``counts[i]`` times (the request id, time, model of each request's rows). Built into
    Arrow by converting the few distinct values once and repeating them (``take``): a
    column of thousands of equal timestamps then costs what one costs.

    >>> Repeat.join([Repeat("a", 2), Repeat("b", 1)]).array(pa.string()).to_pylist()
    ['a', 'a', 'b']
    """

    __slots__ = ("values", "counts")

    def __init__(self, value: Any, n: int) -> None:
        self.values, self.counts = [value], [n]

    @property
    def n(self) -> int:
        return sum(self.counts)

    @staticmethod
    def join(parts: list[Repeat]) -> Repeat:
        out = Repeat(None, 0)
        out.values = [v for p in parts for v in p.values]
        out.counts = [c for p in parts for c in p.counts]
        return out

    def array(self, type_: pa.DataType) -> pa.Array:
        import numpy as np

        at = np.repeat(np.arange(len(self.values), dtype=np.int64), self.counts)
        return pa.array(self.values, type_).take(at)

    def tolist(self) -> list:
        return [v for v, c in zip(self.values, self.counts) for _ in range(c)]


def merge_columns(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Log rows given as several column parts (``{column: values}``; a value list, a
    ``JsonColumn`` or a ``Repeat``) as one part: lists concatenated, JSON columns and
    repeats joined so that their Arrow form is built once (JSON parts of another shape are
    built apart and concatenated). Two list columns whose parts are the same lists (the
    event times of one group's features) get one merged list, which ``columns_table``
    then converts once.

    >>> t = [1, 2]
    >>> out = merge_columns([{"a": t, "b": t}, {"a": [3], "b": [3]}])
    >>> out["a"], out["a"] is out["b"]
    ([1, 2, 3], False)
    >>> out = merge_columns([{"a": t, "b": t}])
    >>> out["a"], out["a"] is out["b"]
    ([1, 2], True)
    """
    sizes = [part_rows(p) for p in parts]
    names: dict[str, None] = {}
    for p in parts:
        names.update(dict.fromkeys(p))
    out: dict[str, Any] = {}
    merged: dict[tuple, list] = {}  # the parts of a list column -> its merged list
    for name in names:
        cols: list[Any] = [p.get(name) for p in parts]
        same = tuple(map(id, cols))  # columns made of the same lists: one merged list
        if same in merged:
            out[name] = merged[same]
            continue
        kinds = set(map(type, cols))
        if kinds == {list}:  # the common case: plain value lists
            out[name] = merged[same] = list(chain.from_iterable(cols))
        elif kinds == {JsonColumn}:
            if len({c.shape() for c in cols}) == 1:
                out[name] = JsonColumn.join(cols)
            else:
                out[name] = pa.concat_arrays([c.array() for c in cols])
        elif kinds == {Repeat}:
            out[name] = Repeat.join(cols)
        elif JsonColumn not in kinds:
            out[name] = list(chain.from_iterable(
                [None] * k if c is None else c.tolist() if isinstance(c, Repeat) else c
                for c, k in zip(cols, sizes)))
        else:
            out[name] = pa.concat_arrays([
                c.array() if isinstance(c, JsonColumn) else
                pa.array(c if c is not None else [None] * k, pa.string())
                for c, k in zip(cols, sizes)])
    return out


def part_rows(part: Mapping[str, Any]) -> int:
    for v in part.values():
        return v.n if isinstance(v, (JsonColumn, Repeat)) else len(v)
    return 0
