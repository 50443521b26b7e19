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
