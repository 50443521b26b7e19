"""Reading one feature group from an online store: request keys in, columns out.

Request key values must already have the key's dtype; nothing is guessed:

* ``string`` keys take ``str`` only;
* ``int`` / ``long`` keys take Python or NumPy integers (not ``bool``, not ``"1"``,
  not ``1.0``) within the dtype's range.

Anything else is refused with a ``ValidationError`` naming the key, the row and the
value, so a typo never silently reads as "missing".

>>> coerce_key("JFK", "string", "origin", 0)
'JFK'
>>> coerce_key("1", "int", "year", 3)
Traceback (most recent call last):
...
sparkfs.errors.ValidationError: entity row 3: join key 'year' must be an int, got '1' (str); pass an integer
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Sequence
from typing import Any

from ..definitions import FeatureGroup
from ..errors import ValidationError
from .base import OnlineStore
from .codec import EPOCH
from .response import EXPIRED, MISSING, PRESENT

_RANGES = {"int": (-(2 ** 31), 2 ** 31 - 1), "long": (-(2 ** 63), 2 ** 63 - 1)}


def coerce_key(value: Any, dtype: str, key: str, row: int) -> Any:
    """``value`` checked against the join key's dtype (see the module docstring)."""
    if dtype == "string":
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValidationError(
                        f"entity row {row}: join key {key!r} value {_shown(value)} is not valid "
                        "Unicode text (a lone surrogate); pass UTF-8 text") from None
            return value if type(value) is str else str(value)
        raise ValidationError(f"entity row {row}: join key {key!r} must be a string, got "
                              f"{_shown(value)} ({type(value).__name__}); pass a str")
    if type(value) is int or (isinstance(value, numbers.Integral)
                              and not isinstance(value, bool)):
        v = int(value)
        lo, hi = _RANGES[dtype]
        if lo <= v <= hi:
            return v
        raise ValidationError(f"entity row {row}: join key {key!r} value {_shown(v)} is out of range "
                              f"for a {dtype} key")
    article = "an" if dtype == "int" else "a"
    raise ValidationError(f"entity row {row}: join key {key!r} must be {article} {dtype}, got "
                          f"{_shown(value)} ({type(value).__name__}); pass an integer")


def _shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` of at most ``limit`` characters of it (a message never echoes a huge
    value).

    >>> _shown("x" * 100, 10)
    "'xxxxxxxxxx'... (90 more characters)"
    """
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value) - limit} more characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def read_group(store: OnlineStore, group: FeatureGroup, keys: Sequence[tuple],
               features: Sequence[str], now: dt.datetime
               ) -> tuple[list[list], list[list[str]], list[list[dt.datetime | None]]]:
    """Values, statuses and event times per requested feature, aligned with ``keys``.
    A row older than the group's ttl at ``now`` is ``expired`` with value None."""
    if group.aggregations:  # windowed aggregates are finished at read time, against `now`
        from ..aggregations.online import read_aggregates

        values, statuses, times = read_aggregates(store, group, keys, features, now)
        return values, [null_missing(v, s) for v, s in zip(values, statuses)], times
    rows = store.read(group, keys, features)
    n = len(features)
    oldest = None
    if group.ttl is not None:
        oldest = (now - EPOCH - group.ttl) // dt.timedelta(microseconds=1)
    empty = (None,) * n
    row_values: list[tuple] = []
    row_status: list[str] = []
    row_time: list[dt.datetime | None] = []
    seen: dict[int, dt.datetime] = {}
    for row in rows:
        if row is None:
            row_values.append(empty)
            row_status.append(MISSING)
            row_time.append(None)
            continue
        t = seen.get(row.event_time_us)  # rows with one event time share the object
        if t is None:
            t = seen[row.event_time_us] = EPOCH + dt.timedelta(microseconds=row.event_time_us)
        row_time.append(t)
        if oldest is not None and row.event_time_us < oldest:
            row_values.append(empty)
            row_status.append(EXPIRED)
        else:
            row_values.append(row.values)
            row_status.append(PRESENT)
    values = [list(col) for col in zip(*row_values)] if row_values else [[] for _ in range(n)]
    # every feature of a group shares its row's status and event time, except that a
    # stored null/NaN value is "missing" (Feast's NULL_VALUE is not PRESENT either), as in
    # batch scoring and the evaluation log
    return values, [null_missing(v, row_status) for v in values], [row_time] * n


def null_missing(values: list, statuses: list[str]) -> list[str]:
    """``statuses`` with ``missing`` wherever a ``present`` value is null or NaN (the row
    exists but holds no value for this feature); the same list when none is.

    >>> null_missing([1.0, None, float("nan")], ["present", "present", "present"])
    ['present', 'missing', 'missing']
    """
    if all(v is not None and v == v for v in values):
        return statuses
    return [MISSING if s == PRESENT and (v is None or v != v) else s
            for v, s in zip(values, statuses)]
