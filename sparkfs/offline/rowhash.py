"""64-bit row hashes of Arrow columns, the same in every process: what the one-pass write
(``sparkfs.offline.onepass``) and the local engine compare identities by.

``row_hash(table, columns, seed)`` hashes each row's cells of ``columns`` into one
``uint64`` with numpy (numbers, times and booleans by their bits, strings and binaries with
pandas' keyed SipHash, once per distinct value of the batch, other types by a canonical
``repr``; ``bench/sketch_update.py`` prints the CPU it takes), so the driver and Spark's
Python workers agree whatever their ``PYTHONHASHSEED``. Values compare as Spark's value
hashes and ``checks.identity_codes`` do: null equals null (and differs from every value,
NaN included), NaN equals NaN, -0.0 equals 0.0. Two seeds give two independent hashes.

>>> import pyarrow as pa
>>> t = pa.table({"x": [0.0, -0.0, float("nan"), None], "s": ["a", "a", "b", None]})
>>> h = row_hash(t, ["x"], 1)
>>> bool(h[0] == h[1]), bool(h[2] == h[3]), h.dtype.name
(True, False, 'uint64')
>>> bool(row_hash(t, ["s", "x"], 1)[0] == row_hash(t, ["s", "x"], 2)[0])
False
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["row_hash", "row_hashes"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_P = np.uint64(0x100000001B3)
_NULL = np.uint64(0x6A09E667F3BCC909)
_KEYS = {1: "sparkfs-rowhash1", 2: "sparkfs-rowhash2"}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (a bijection of uint64), element-wise, in place: ``x`` must be
    an array of its own (not a view of a column's buffer). Returns ``x``."""
    shifted = np.empty_like(x)
    with np.errstate(over="ignore"):
        for shift, mult in ((30, _M1), (27, _M2)):
            np.right_shift(x, np.uint64(shift), out=shifted)
            np.bitwise_xor(x, shifted, out=x)
            np.multiply(x, mult, out=x)
        np.right_shift(x, np.uint64(31), out=shifted)
        np.bitwise_xor(x, shifted, out=x)
    return x


def row_hash(table: pa.Table | pa.RecordBatch, columns: list[str], seed: int) -> np.ndarray:
    """One ``uint64`` per row of ``table`` hashing its cells of ``columns`` (see the module
    docstring); ``seed`` 1 or 2 picks one of two independent hashes."""
    return row_hashes(table, columns, (seed,))[0]


def row_hashes(table: pa.Table | pa.RecordBatch, columns: list[str],
               seeds: tuple[int, ...] = (1, 2)) -> list[np.ndarray]:
    """``[row_hash(table, columns, seed) for seed in seeds]``, each column read and
    prepared (nulls, NaN, -0.0, its bits) once for all the seeds.

    >>> t = pa.table({"x": [0.5, None], "s": ["a", None]})
    >>> h1, h2 = row_hashes(t, ["x", "s"])
    >>> bool((h1 == row_hash(t, ["x", "s"], 1)).all() and (h2 == row_hash(t, ["x", "s"], 2)).all())
    True
    """
    n = table.num_rows
    hs = [np.full(n, np.uint64(seed) * _P + np.uint64(len(columns)), dtype=np.uint64)
          for seed in seeds]
    with np.errstate(over="ignore"):
        for i, c in enumerate(columns):
            cells = _cell_hashes(table.column(c), seeds, i)
            for h, cell in zip(hs, cells):
                np.multiply(h, _P, out=h)
                np.add(h, cell, out=h)
                _mix(h)
    return hs


def _cell_hashes(col: Any, seeds: tuple[int, ...], position: int) -> list[np.ndarray]:
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    t = col.type
    valid = None if col.null_count == 0 else \
        np.asarray(pc.is_valid(col).to_numpy(zero_copy_only=False), dtype=bool)
    salts = [np.uint64(seed * 0x9E3779B97F4A7C15 % (1 << 64)) + np.uint64(position)
             for seed in seeds]
    if pa.types.is_floating(t):
        v = col.cast(pa.float64())
        if col.null_count:
            v = pc.fill_null(v, 0.0)
        with np.errstate(invalid="ignore"):  # a signalling NaN stays a NaN
            x = np.asarray(v.to_numpy(zero_copy_only=False), dtype=np.float64) + 0.0  # -0.0: 0.0
        nan = np.isnan(x)
        if nan.any():
            x[nan] = np.nan  # one NaN bit pattern
        bits = x.view(np.uint64)
        out = [_mix(bits + salt) for salt in salts]
    elif pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_temporal(t):
        if pa.types.is_boolean(t):
            v = col.cast(pa.int8())
        elif pa.types.is_temporal(t):
            v = col.view(pa.int32() if t.bit_width == 32 else pa.int64())
        else:
            v = col
        v = v.cast(pa.int64())
        if col.null_count:
            v = pc.fill_null(v, 0)
        x = np.asarray(v.to_numpy(zero_copy_only=False), dtype=np.int64)
        out = [_mix(x.view(np.uint64) + salt) for salt in salts]
    else:
        import pandas as pd

        text = pa.types.is_string(t) or pa.types.is_large_string(t)
        if text or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            # each distinct value hashed once (a key column repeats its values)
            if col.null_count:
                col = pc.fill_null(col, "" if text else b"")
            coded = pc.dictionary_encode(col)
            objs = np.asarray(coded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
            codes = np.asarray(coded.indices.to_numpy(zero_copy_only=False))
        else:  # lists, decimals, ...: a canonical text form
            objs = np.array([repr(_canonical(v)) for v in col.to_pylist()], dtype=object)
            codes = None
        out = []
        for seed, salt in zip(seeds, salts):
            h = _mix(pd.util.hash_array(objs, hash_key=_KEYS.get(seed, _KEYS[1]),
                                        categorize=codes is None).astype(np.uint64) + salt)
            out.append(h if codes is None else h[codes])
    if valid is not None:
        out = [np.where(valid, bits, _NULL + salt) for bits, salt in zip(out, salts)]
    return out


def _canonical(value: Any) -> Any:
    """A cell's value with NaN as one token and -0.0 as 0.0 (lists element by element)."""
    if isinstance(value, float):
        return "nan" if value != value else (0.0 if value == 0 else value)
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    return value
