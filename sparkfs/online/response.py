"""``OnlineResponse``: feature vectors for a list of entity rows, with a status per value.

Columns come in request order: the join keys first, then the features. Each feature
value has a status, the same rule online, in batch scoring and in the evaluation log:

* ``"present"``: a value was found (not null, not NaN);
* ``"missing"``: no value: no row for the key, or the row found holds null/NaN for this
  feature (Feast calls these NOT_FOUND and NULL_VALUE; neither is PRESENT there); in the
  second case the event time of that row is still given;
* ``"expired"``: the newest row is older than the group's ttl at read time; the value is
  None.

and the event time of the row it came from. ``transform_fingerprints`` names the on-demand
transforms that computed columns of the response, with their fingerprints.

>>> r = OnlineResponse({"origin": ["JFK", "EWR"]})
>>> r.add_feature("temp", [39.0, None], ["present", "missing"], dtype="double")
>>> r.to_dict()
{'origin': ['JFK', 'EWR'], 'temp': [39.0, None]}
>>> r.to_dict(include_status=True)["temp__status"]
['present', 'missing']
>>> r.statuses["temp"]
['present', 'missing']
>>> r.transform_fingerprints
{}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

PRESENT = "present"
MISSING = "missing"
EXPIRED = "expired"
STATUSES = (PRESENT, MISSING, EXPIRED)
_STATUS_SET = frozenset(STATUSES)

_PANDAS_DTYPES = {"boolean": "boolean", "int": "Int32", "long": "Int64", "float": "float32",
                  "double": "float64", "timestamp": "datetime64[us, UTC]"}


class OnlineResponse:
    """Feature values per entity row, what ``fs.get_online_features`` returns: the join
    keys, then per feature its values, statuses (``present`` / ``missing`` / ``expired``),
    event times and dtype. Built with join-key columns, then ``add_feature``.

    >>> r = OnlineResponse({"origin": ["JFK"]})
    >>> r.add_feature("temp", [float("nan")], ["present"], dtype="double")
    >>> r.feature_names, r.dtypes["temp"], r.to_pandas()["temp"].isna().tolist()
    (['temp'], 'double', [True])
    """

    def __init__(self, keys: Mapping[str, Sequence[Any]]) -> None:
        self._keys = {k: list(v) for k, v in keys.items()}
        lengths = {len(v) for v in self._keys.values()}
        if len(lengths) > 1:
            raise ValueError(f"join-key columns differ in length: {sorted(lengths)}")
        self._n = lengths.pop() if lengths else 0
        self._values: dict[str, list] = {}
        self.statuses: dict[str, list[str]] = {}
        self.event_times: dict[str, list[dt.datetime | None]] = {}
        self.dtypes: dict[str, str | None] = {}
        self._last_times: tuple[Any, list] = (None, [])
        self._no_times: list = []
        #: the on-demand transforms computed for this response: name -> fingerprint
        self.transform_fingerprints: dict[str, str] = {}

    @property
    def join_keys(self) -> list[str]:
        return list(self._keys)

    @property
    def feature_names(self) -> list[str]:
        return list(self._values)

    def __len__(self) -> int:
        return self._n

    def add_feature(self, name: str, values: Sequence[Any], statuses: Sequence[str] | None = None,
                    event_times: Sequence[dt.datetime | None] | None = None,
                    dtype: str | None = None) -> None:
        """Append a feature column (one value per entity row). ``statuses`` default to
        ``present`` for values and ``missing`` for None and NaN."""
        values = list(values)
        if name in self._values or name in self._keys:
            raise ValueError(f"the response already has a column named {name!r}")
        if len(values) != self._n and (self._keys or self._values):
            raise ValueError(f"feature {name!r} has {len(values)} values for {self._n} rows")
        if not self._keys and not self._values:
            self._n = len(values)
        if statuses is None:
            statuses = [MISSING if v is None or v != v else PRESENT for v in values]
        statuses = list(statuses)
        if len(statuses) != len(values) or not set(statuses) <= _STATUS_SET:
            raise ValueError(f"feature {name!r}: statuses must be one of {STATUSES}, one per row")
        self._values[name] = values
        self.statuses[name] = statuses
        if event_times is None:  # one shared list (the JSON encoder formats each list once)
            if len(self._no_times) != len(values):
                self._no_times = [None] * len(values)
            times = self._no_times
        elif event_times is self._last_times[0]:  # the features of one group share them
            times = self._last_times[1]
        else:
            times = list(event_times)
            self._last_times = (event_times, times)
        self.event_times[name] = times
        self.dtypes[name] = dtype

    def to_dict(self, include_status: bool = False,
                include_event_times: bool = False) -> dict[str, list]:
        """``{join_key: [...], feature: [...]}``; optionally ``{feature}__status`` and
        ``{feature}__event_time`` columns after each feature."""
        out: dict[str, list] = {k: list(v) for k, v in self._keys.items()}
        for name, values in self._values.items():
            out[name] = list(values)
            if include_status:
                out[f"{name}__status"] = list(self.statuses[name])
            if include_event_times:
                out[f"{name}__event_time"] = list(self.event_times[name])
        return out

    def to_pandas(self, include_status: bool = False, include_event_times: bool = False):
        """A pandas DataFrame of ``to_dict``; integer and boolean features use pandas'
        nullable dtypes. (Use ``to_dict`` to tell NaN from null in float features.)"""
        import pandas as pd

        data = self.to_dict(include_status, include_event_times)
        cols = {}
        for name, values in data.items():
            dtype = "timestamp" if name.endswith("__event_time") else self.dtypes.get(name)
            cols[name] = _series(pd, values, _PANDAS_DTYPES.get(dtype or ""))
        return pd.DataFrame(cols)

    def __repr__(self) -> str:
        return (f"OnlineResponse(rows={self._n}, join_keys={self.join_keys}, "
                f"features={self.feature_names})")


def _series(pd: Any, values: list, dtype: str | None) -> Any:
    if dtype is None:
        return pd.Series(values, dtype=object)
    if dtype in ("float32", "float64"):
        return pd.Series([float("nan") if v is None else v for v in values], dtype=dtype)
    return pd.Series(values, dtype=dtype)
