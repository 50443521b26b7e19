"""How feature values are stored online: one JSON value per feature, per dtype.

The same encoding is used by every backend (a row's values as one JSON array in SQLite,
one JSON value per HBase cell), so a value reads back exactly as Delta holds it:

=================  ============================================  =====================
dtype              stored as                                     read back as
=================  ============================================  =====================
boolean/int/long   JSON true/false, integer                      ``bool`` / ``int``
float/double       JSON number; ``NaN``, ``Infinity`` spelled    ``float`` (NaN stays
                   as Python's ``json`` does; null is ``null``   NaN, null stays None)
string             JSON string                                   ``str``
timestamp          integer microseconds since 1970-01-01 UTC     aware ``datetime`` (UTC)
date               integer days since 1970-01-01                 ``datetime.date``
array<...>         JSON array of numbers                         ``list`` of ``float``
=================  ============================================  =====================

A float (float32) value is written as the exact double it widens to, so it reads back as
the same float32 value.

>>> import datetime as dt, math
>>> enc = encode_value(dt.datetime(2013, 1, 1, 5, tzinfo=dt.timezone.utc), "timestamp")
>>> enc
1357016400000000
>>> decode_value(enc, "timestamp")
datetime.datetime(2013, 1, 1, 5, 0, tzinfo=datetime.timezone.utc)
>>> math.isnan(decode_value(encode_value(float("nan"), "double"), "double"))
True
>>> decode_value(encode_value(dt.date(2013, 6, 1), "date"), "date")
datetime.date(2013, 6, 1)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EPOCH_DATE = dt.date(1970, 1, 1)
_US = dt.timedelta(microseconds=1)
_DAY = dt.timedelta(days=1)

dumps = json.JSONEncoder(allow_nan=True, separators=(",", ":")).encode
loads = json.loads


def timestamp_to_us(value: Any) -> int:
    """An aware (or naive = UTC) datetime / pandas Timestamp as integer microseconds."""
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - EPOCH) // _US


def us_to_timestamp(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def _days_to_date(days: int) -> dt.date:
    return EPOCH_DATE + dt.timedelta(days=days)


def encode_value(value: Any, dtype: str) -> Any:
    """One Python value as its JSON-able stored form (see the module table)."""
    if value is None:
        return None
    if dtype == "timestamp":
        return timestamp_to_us(value)
    if dtype == "date":
        if isinstance(value, dt.datetime):
            value = value.date()
        return (value - EPOCH_DATE).days
    if dtype.startswith("array"):
        return [None if v is None else float(v) for v in value]
    if dtype in ("float", "double"):
        return float(value)
    if dtype in ("int", "long"):
        return int(value)
    if dtype == "boolean":
        return bool(value)
    return value


def decode_value(stored: Any, dtype: str) -> Any:
    """The inverse of ``encode_value``."""
    if stored is None:
        return None
    if dtype == "timestamp":
        return us_to_timestamp(stored)
    if dtype == "date":
        return _days_to_date(stored)
    if dtype in ("float", "double"):
        return float(stored)  # JSON may hand back an int for 2.0 written as 2.0: keep float
    if dtype.startswith("array"):
        return [None if v is None else float(v) for v in stored]
    return stored


def decoder(dtype: str) -> Callable[[Any], Any] | None:
    """A fast per-value decoder for ``dtype``, or None when the stored form is the value."""
    if dtype == "timestamp":
        return lambda v: None if v is None else EPOCH + dt.timedelta(microseconds=v)
    if dtype == "date":
        return lambda v: None if v is None else EPOCH_DATE + dt.timedelta(days=v)
    return None


def arrow_column_to_stored(col: pa.ChunkedArray | pa.Array, dtype: str) -> list:
    """A whole Arrow column as stored forms (vectorised for timestamps and dates)."""
    if dtype == "timestamp":
        col = pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64())
    elif dtype == "date":
        col = pc.cast(pc.cast(col, pa.date32()), pa.int32())
    elif dtype in ("float", "double"):
        col = pc.cast(col, pa.float64())
    elif dtype.startswith("array"):
        col = pc.cast(col, pa.list_(pa.float64()))
    return col.to_pylist()



def json_cells(col: pa.ChunkedArray | pa.Array, dtype: str) -> list[bytes]:
    """A whole Arrow column as one JSON value per cell (the HBase store's cell values):
    byte for byte ``dumps(encode_value(v, dtype)).encode()`` of each value (``null`` for
    a missing one), without a ``dumps`` call per value. Numbers, booleans, timestamps and
    dates are written by ONE ``dumps`` of the whole column's list, which is then cut at
    its commas (none of those values contains one); strings by the encoder's own string
    function (ASCII, ``\\uXXXX`` escapes, as ``dumps`` writes them); arrays one by one.

    >>> json_cells(pa.array([1.5, None, float("nan"), float("-inf"), 2.0]), "double")
    [b'1.5', b'null', b'NaN', b'-Infinity', b'2.0']
    >>> json_cells(pa.array(["Zürich", None, 'a,"b"']), "string")
    [b'"Z\\\\u00fcrich"', b'null', b'"a,\\\\"b\\\\""']
    >>> json_cells(pa.array([True, None]), "boolean")
    [b'true', b'null']
    """
    if dtype == "string":
        enc = _encode_str
        return [b"null" if v is None else enc(v).encode() for v in
                pc.cast(col, pa.string()).to_pylist()]
    if dtype.startswith("array"):
        return [dumps(v).encode() for v in arrow_column_to_stored(col, dtype)]
    if dtype == "boolean":
        values = pc.cast(col, pa.bool_()).to_pylist()
    elif dtype == "float":  # the exact double the float32 value widens to
        values = pc.cast(_fixed_stored(col, "float"), pa.float64()).to_pylist()
    elif dtype in _ARROW_FIXED or dtype in ("timestamp", "date"):
        values = _fixed_stored(col, dtype).to_pylist()
    else:
        raise ValueError(f"no stored form for dtype {dtype!r}")
    if not values:
        return []
    return dumps(values).encode()[1:-1].split(b",")


_encode_str = json.encoder.encode_basestring_ascii  # what ``dumps`` writes a str with


# -- the SQLite row format -------------------------------------------------------------------
_FIXED = {"boolean": "?", "int": "i", "long": "q", "float": "f", "double": "d",
          "timestamp": "q", "date": "i"}


class RowCodec:
    """A row of feature values as one compact blob (the SQLite store's ``_values``).

    Layout (little-endian): for each fixed-width feature, in definition order, a presence
    byte (0 = null) and the value (``?`` boolean, ``i`` int32 / date days, ``q`` int64 /
    timestamp µs, ``f`` float32, ``d`` float64; NaN keeps its bits); then, when the group
    has strings or arrays, a UTF-8 JSON array of those values in definition order.
    Decoding a row of 20 doubles is one ``struct.unpack`` (about a microsecond).

    >>> c = RowCodec(["double", "string", "int"])
    >>> blob = c.encode_rows([[1.5], ["JFK"], [None]])[0]
    >>> c.decode(blob)
    [1.5, 'JFK', None]
    """

    def __init__(self, dtypes: Sequence[str]) -> None:
        import struct

        self.n = len(dtypes)
        self.fixed = [i for i, d in enumerate(dtypes) if d in _FIXED]
        self.var = [i for i, d in enumerate(dtypes) if d not in _FIXED]
        self.struct = struct.Struct("<" + "".join("B" + _FIXED[dtypes[i]] for i in self.fixed))
        self.size = self.struct.size
        self.identity = not self.var and self.fixed == list(range(self.n))

    def encode_rows(self, columns: Sequence[list]) -> list[bytes]:
        """Blobs from column lists of stored forms (all features, definition order)."""
        flat: list[list] = []
        for i in self.fixed:
            col = columns[i]
            flat.append([0 if v is None else 1 for v in col])
            flat.append([0 if v is None else v for v in col])
        pack = self.struct.pack
        fixed = [pack(*t) for t in zip(*flat)] if flat else [b""] * len(columns[0])
        if not self.var:
            return fixed
        var = [dumps(list(t)).encode() for t in zip(*(columns[i] for i in self.var))]
        return [a + b for a, b in zip(fixed, var)]

    def encode_arrow(self, columns: Sequence[pa.ChunkedArray | pa.Array],
                     dtypes: Sequence[str]) -> list[bytes]:
        """Blobs straight from Arrow columns (all features, definition order, of
        ``dtypes``): the same bytes as ``encode_rows`` over ``arrow_column_to_stored``,
        with the fixed-width part packed by numpy in one pass instead of row by row.

        >>> c = RowCodec(["double", "int", "string"])
        >>> blobs = c.encode_arrow([pa.array([1.5, None]), pa.array([None, 7], pa.int32()),
        ...                         pa.array(["a", None])], ["double", "int", "string"])
        >>> [c.decode(b) for b in blobs]
        [[1.5, None, 'a'], [None, 7, None]]
        """
        import numpy as np

        n = len(columns[0]) if columns else 0
        rec = np.zeros(n, dtype=self._numpy_dtype())
        for j, i in enumerate(self.fixed):
            col = columns[i]
            if isinstance(col, pa.ChunkedArray):
                col = col.combine_chunks()
            stored = _fixed_stored(col, dtypes[i])
            rec[f"p{j}"] = stored.is_valid().to_numpy(zero_copy_only=False)
            rec[f"v{j}"] = pc.fill_null(stored, pa.scalar(0, stored.type)).to_numpy(
                zero_copy_only=False)
        buf, size = rec.tobytes(), self.size
        fixed = [buf[k:k + size] for k in range(0, n * size, size)] if size else [b""] * n
        if not self.var:
            return fixed
        var = [dumps(list(t)).encode() for t in zip(
            *(arrow_column_to_stored(columns[i], dtypes[i]) for i in self.var))]
        return [a + b for a, b in zip(fixed, var)]

    def _numpy_dtype(self) -> Any:
        import numpy as np

        fields = []
        for j, code in enumerate(self.struct.format.lstrip("<")[1::2]):
            fields += [(f"p{j}", "u1"), (f"v{j}", _NUMPY[code])]
        return np.dtype(fields)

    def decode(self, blob: bytes) -> list:
        """All feature values of a row, in stored form, in definition order."""
        t = self.struct.unpack_from(blob)
        flags, values = t[0::2], t[1::2]
        if self.identity:
            return list(values) if all(flags) else [v if f else None for f, v in zip(flags, values)]
        out: list = [None] * self.n
        for i, f, v in zip(self.fixed, flags, values):
            if f:
                out[i] = v
        if self.var:
            for i, v in zip(self.var, _loads_tail(blob[self.size:])):
                out[i] = v
        return out


#: the numpy form of each ``struct`` code the row format uses (little-endian, unpadded)
_NUMPY = {"?": "u1", "i": "<i4", "q": "<i8", "f": "<f4", "d": "<f8"}
_ARROW_FIXED = {"boolean": pa.uint8(), "int": pa.int32(), "long": pa.int64(),
                "float": pa.float32(), "double": pa.float64()}


def _fixed_stored(col: pa.Array, dtype: str) -> pa.Array:
    """A fixed-width feature column as the Arrow type its packed form holds."""
    if dtype == "timestamp":
        return pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64())
    if dtype == "date":
        return pc.cast(pc.cast(col, pa.date32()), pa.int32())
    if dtype == "float":  # float32 values read back as the same float32 (via float64)
        return pc.cast(pc.cast(col, pa.float64()), pa.float32())
    return pc.cast(col, _ARROW_FIXED[dtype])


def _loads_tail(data: bytes) -> list:
    """The JSON array at the end of a row blob. orjson reads it ~8x faster and gives the same
    values for what ``dumps`` writes there (text; floats written as floats); it refuses
    ``NaN``/``Infinity`` tokens and lone surrogates, which the standard library reads."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return loads(data.decode("utf-8"))
