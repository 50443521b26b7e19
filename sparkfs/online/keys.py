"""The stable binary row-key encoding of join keys (used by the HBase store).

A row key is the concatenation of the encoded join-key values, in the group's join-key
order, optionally preceded by a one-byte salt. The format never changes within a format
version, so any client can compute a row key:

* ``int`` / ``long``: 8 bytes, big-endian two's complement with the sign bit flipped
  (so byte order equals numeric order).
* ``string``: the UTF-8 bytes with every ``0x00`` written as ``0x00 0xFF``, then the
  terminator ``0x00 0x01`` (so no key is a prefix of another and byte order equals
  string order).
* salt (when ``salt_buckets`` > 0): one byte ``crc32(unsalted key) % salt_buckets``
  in front, spreading consecutive keys over regions that were pre-split on it.

>>> encode_key(("JFK",), ("string",))
b'JFK\\x00\\x01'
>>> encode_key((2013, "N14228"), ("int", "string")).hex()
'80000000000007dd4e31343232380001'
>>> encode_key(("JFK",), ("string",), salt_buckets=16)[:1]
b'\\x03'
>>> decode_key(encode_key((-1, "a\\x00b"), ("long", "string")), ("long", "string"))
(-1, 'a\\x00b')
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

_SIGN = 1 << 63
_PACK = struct.Struct(">Q")
_TERM = b"\x00\x01"


def encode_key(values: Sequence[Any], dtypes: Sequence[str], salt_buckets: int = 0) -> bytes:
    """The row key of one entity (``values`` in join-key order)."""
    parts = []
    for v, d in zip(values, dtypes):
        if d == "string":
            parts.append(v.encode("utf-8").replace(b"\x00", b"\x00\xff") + _TERM)
        else:
            parts.append(_PACK.pack((v + _SIGN) & 0xFFFFFFFFFFFFFFFF))
    key = b"".join(parts)
    if salt_buckets:
        return bytes((zlib.crc32(key) % salt_buckets,)) + key
    return key


def row_keys(columns: Sequence[Any], dtypes: Sequence[str], salt_buckets: int = 0) -> list[bytes]:
    """The row keys of whole key columns (Arrow arrays or lists, join-key order, no
    nulls): ``encode_key`` of every row, with integer keys packed by numpy at once.

    >>> import pyarrow as pa
    >>> cols = [pa.array([2013, -1]), pa.array(["N14228", "a\\x00b"])]
    >>> row_keys(cols, ("int", "string")) == [encode_key((2013, "N14228"), ("int", "string")),
    ...                                       encode_key((-1, "a\\x00b"), ("int", "string"))]
    True
    """
    import numpy as np

    parts: list[list[bytes]] = []
    for col, d in zip(columns, dtypes):
        values = col.to_pylist() if hasattr(col, "to_pylist") else list(col)
        if d == "string":
            parts.append([v.encode("utf-8").replace(b"\x00", b"\x00\xff") + _TERM
                          for v in values])
        else:
            flipped = np.asarray(values, dtype=np.int64).view(np.uint64) ^ np.uint64(_SIGN)
            buf = flipped.astype(">u8").tobytes()
            parts.append([buf[i:i + 8] for i in range(0, len(buf), 8)])
    keys = parts[0] if len(parts) == 1 else [b"".join(t) for t in zip(*parts)]
    if salt_buckets:
        crc = zlib.crc32
        return [bytes((crc(k) % salt_buckets,)) + k for k in keys]
    return keys


def decode_key(key: bytes, dtypes: Sequence[str], salt_buckets: int = 0) -> tuple:
    """The join-key values of an (optionally salted) row key."""
    pos = 1 if salt_buckets else 0
    out: list[Any] = []
    for d in dtypes:
        if d == "string":
            buf = bytearray()
            while True:
                b = key[pos]
                if b == 0:
                    if key[pos + 1] == 1:
                        pos += 2
                        break
                    buf.append(0)
                    pos += 2
                else:
                    buf.append(b)
                    pos += 1
            out.append(buf.decode("utf-8"))
        else:
            (u,) = _PACK.unpack_from(key, pos)
            out.append(u - _SIGN)
            pos += 8
    return tuple(out)
