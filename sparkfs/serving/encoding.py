"""Response bodies of the online feature service: ``OnlineResponse`` -> JSON.

NaN goes out as null; timestamps as ISO 8601 text (the rows of one stored event time
share one datetime object, formatted once); bodies are encoded with orjson where it
gives the same document as the standard library.

>>> _dumps({"a": [1.5, None], "b": 2 ** 70})
b'{"a":[1.5,null],"b":1180591620717411303424}'
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import orjson
from fastapi.responses import Response


def _iso(t: Any) -> str | None:
    return t.isoformat() if isinstance(t, (dt.datetime, dt.date)) else None


def _iso_column(times: list) -> list:
    """ISO texts of a column of event times; the rows of one stored event time share one
    datetime object (see ``read_group``), formatted once."""
    memo: dict[int, str | None] = {}
    out: list[str | None] = []
    for t in times:
        if t is None:
            out.append(None)
            continue
        text = memo.get(id(t))  # the objects live in ``times``: ids are unique here
        if text is None:
            text = memo[id(t)] = _iso(t)
        out.append(text)
    return out


def _jsonable(values: list, dtype: str | None) -> list:
    if dtype in ("double", "float"):
        return [None if v != v else v for v in values]  # NaN is the only value != itself
    if dtype in ("timestamp", "date"):
        return [_iso(v) if v is not None else None for v in values]
    if dtype and dtype.startswith("array"):
        return [None if v is None else [None if isinstance(x, float) and math.isnan(x) else x
                                        for x in v] for v in values]
    return values


def encode_response(response: Any) -> dict:
    """An ``OnlineResponse`` as the JSON body of ``POST /features``.

    The features of one group share one list of event times (see ``OnlineResponse``):
    it is formatted once and the text reused for each of them.

    >>> from sparkfs.online.response import OnlineResponse
    >>> r = OnlineResponse({"origin": ["JFK"]})
    >>> r.add_feature("temp", [float("nan")], ["present"], [None], "double")
    >>> encode_response(r)["results"][1]
    {'values': [None], 'statuses': ['present'], 'event_timestamps': [None]}
    """
    columns = response.to_dict()
    n = len(response)
    names, results = [], []
    for k in response.join_keys:
        names.append(k)
        results.append({"values": columns[k], "statuses": ["present"] * n,
                        "event_timestamps": [None] * n})
    formatted: dict[int, tuple[list, list]] = {}  # id(event times) -> (them, their text)
    for name in response.feature_names:
        times = response.event_times[name]
        hit = formatted.get(id(times))
        if hit is None or hit[0] is not times:
            hit = formatted[id(times)] = (times, _iso_column(times))
        names.append(name)
        results.append({
            "values": _jsonable(columns[name], response.dtypes.get(name)),
            "statuses": response.statuses[name],
            "event_timestamps": hit[1],
        })
    return {"metadata": {"feature_names": names}, "results": results}


_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dumps(body: Any) -> bytes:
    """Compact JSON; orjson where it gives the same document as ``json.dumps`` (it refuses
    ints over 64 bits, non-text keys and lone surrogates: those take the standard
    library, which escapes them)."""
    try:
        return orjson.dumps(body, default=str, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":"), allow_nan=False, default=str).encode()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    """``body`` as an ``application/json`` response (see ``_dumps``).

    >>> json_response({"detail": "x"}, 404).body
    b'{"detail":"x"}'
    """
    return Response(_dumps(body), status_code=status, media_type="application/json",
                    headers=headers)
