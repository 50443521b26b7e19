"""Spark's JSON payload parse in two steps (parse_json_frame: each from_json once per row,
what the Kafka and file sources use) gives exactly what the one-select form (parse_json)
gives, on clean and on malformed payloads, on a real local session."""

from __future__ import annotations

import json
import math

from sparkfs import Entity, FeatureGroup, Field
from sparkfs.streaming import parse

GROUP = FeatureGroup("p", [Entity("e", ["id"], dtypes={"id": "long"})], "ts",
                     [Field("s", "string"), Field("d", "double"), Field("i", "int"),
                      Field("b", "boolean"), Field("l", "long"), Field("t2", "timestamp")])


def payload(**over) -> str:
    row = {"id": 1, "ts": "2013-01-01T05:00:00Z", "s": "x", "d": 1.5, "i": 3, "b": True,
           "l": 10, "t2": "2013-01-01T05:00:00.123456+02:00"}
    row.update(over)
    return json.dumps({k: v for k, v in row.items() if v is not ...})


PAYLOADS = [
    payload(),
    payload(id=2, d=2, s="caf\u00e9 \"q\" \\ /", b=False),
    payload(id=3, d=float("nan"), l=9007199254740993),
    payload(id=4, d=float("inf"), i=-2147483648, t2=None),
    payload(id=5, d=float("-inf"), s=None, i=None, b=None, l=None),
    payload(id=6, ts="2013-01-01 06:00:00", t2="2013-01-01T07:00:00.5Z"),
    payload(id=7, extra={"nested": [1, 2, {"s": 3}]}, ts=1356998400),
    "{not json", "[1, 2]", "", "null",
    payload(ts=...), payload(d=...), payload(id=None), payload(d="x"), payload(d="NaN"),
    payload(i=2147483648), payload(l=1.5), payload(b=1), payload(s=5),
    payload(ts="2013-13-01T00:00:00Z"), payload(d="x", s=..., ts=None),
]


def parsed(spark, two_steps: bool) -> list[dict]:
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(p, f"o/{i}") for i, p in enumerate(PAYLOADS)],
                               "value string, origin string")
    if two_steps:
        out = parse.parse_json_frame(df, F.col("value"), GROUP, F.col("origin"))
    else:
        out = df.select(*parse.parse_json(F.col("value"), GROUP, F.col("origin")))
    assert out.columns == parse.required_fields(GROUP) + [parse.RAW, parse.ERROR, parse.ORIGIN]
    return [{k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            for r in out.toArrow().to_pylist()]


def test_the_two_step_parse_gives_what_the_one_select_parse_gives(spark):
    two = parsed(spark, True)
    assert two == parsed(spark, False)
    errors = [r[parse.ERROR] for r in two]
    assert errors[:7] == [None] * 7
    assert errors[7:10] == ["not a JSON object"] * 3
    assert errors[11:14] == ["missing field(s): ts", "missing field(s): d", "missing field(s): id"]
    assert errors[-1] == "missing field(s): ts, s; wrong type for field(s): d (double)"
    assert (two[2]["d"], two[4]["s"], two[6]["ts"].isoformat()) == \
        ("NaN", None, "2013-01-01T00:00:00+00:00")
