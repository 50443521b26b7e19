"""pyarrow's parse of collected JSON payloads (parse_json_arrow) against Spark's
(parse_json, from_json on a real local session): on every payload it either gives exactly
Spark's values or hands the batch back to Spark; on the usual forms it does not hand back."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest

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


GOOD = [
    payload(),
    payload(id=2, d=2, s="caf\u00e9 \"q\" \\ /", b=False),         # an integer for a double
    payload(id=3, d=float("nan"), l=9007199254740993),              # NaN token, a long > 2**53
    payload(id=4, d=float("inf"), i=-2147483648, t2=None),          # Infinity token, int min
    payload(id=5, d=float("-inf"), s=None, i=None, b=None, l=None),  # JSON nulls: missing values
    payload(id=6, ts="2013-01-01 06:00:00", t2="2013-01-01T07:00:00.5Z"),  # zone-less: UTC
    payload(id=7, extra={"nested": [1, 2, {"s": 3}]}, ts="2013-01-01T05:00:00-05:30"),
    payload(id=-8, s="", d=-0.0, ts="2013-06-30T23:59:59.999999Z"),
]

DOUBTFUL = [
    "{not json", "[1, 2]", "5", "", "null", '"text"',
    payload(ts=...), payload(d=...), payload(id=None), payload(ts=None),
    payload(d="x"), payload(d="NaN"), payload(d="Infinity"), payload(d=True),
    payload(i=2147483648), payload(i=1.0), payload(l=1e3), payload(b=1), payload(s=5),
    payload(s={"a": 1}), payload(ts=1356998400), payload(ts="2013-01-01"),
    payload(ts="2013-13-01T00:00:00Z"), payload(ts="2013-01-01T05:00:00.1234567Z"),
    payload(ts="2013-01-01T05:00:00+0200"), payload(ts="2013-01-01T25:00:00Z"),
    '{"id": 1, "id": 2, "ts": "2013-01-01T05:00:00Z", "s": "x", "d": 1.5, "i": 3, "b": true, '
    '"l": 10, "t2": null}',
    payload().replace(", ", ",\n"), payload() + " x", payload().replace('"', "'"),
]


def spark_parse(spark, payloads: list[str]) -> pa.Table:
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(p, f"o/{i}") for i, p in enumerate(payloads)],
                               "value string, origin string")
    return df.select(*parse.parse_json(F.col("value"), GROUP, F.col("origin"))).toArrow()


def arrow_parse(payloads: list[str]) -> pa.Table | None:
    return parse.parse_json_arrow(pa.array(payloads, pa.string()),
                                  pa.array([f"o/{i}" for i in range(len(payloads))]), GROUP)


def rows(table: pa.Table) -> list[str]:
    def norm(v):
        return "NaN" if isinstance(v, float) and math.isnan(v) else v

    return [repr({k: norm(v) for k, v in r.items()}) for r in table.to_pylist()]


def test_clean_payloads_parse_in_arrow_to_sparks_values(spark):
    by_spark = spark_parse(spark, GOOD)
    assert by_spark.column(parse.ERROR).null_count == len(GOOD)  # Spark refuses none of them
    by_arrow = arrow_parse(GOOD)
    assert by_arrow is not None
    assert rows(by_arrow) == rows(by_spark)
    assert by_arrow.schema.field("ts").type == pa.timestamp("us", "UTC")


@pytest.mark.parametrize("doubtful", DOUBTFUL)
def test_a_doubtful_payload_is_read_as_spark_reads_it_or_left_to_spark(spark, doubtful):
    batch = GOOD[:2] + [doubtful]
    by_arrow = arrow_parse(batch)
    if by_arrow is None:
        return  # handed back: Spark parses the batch and names its refusals
    by_spark = spark_parse(spark, batch)
    assert by_spark.column(parse.ERROR).null_count == len(batch)
    assert rows(by_arrow) == rows(by_spark)


def test_a_batch_with_a_refused_payload_is_handed_back(spark):
    batch = GOOD + ["{not json", payload(ts=...)]
    assert arrow_parse(batch) is None
    reasons = spark_parse(spark, batch).column(parse.ERROR).to_pylist()[-2:]
    assert reasons == ["not a JSON object", "missing field(s): ts"]
    assert parse.parse_json_arrow(pa.array([payload(ts="2013-01-01 06:00:00")]), pa.array(["o"]),
                                  GROUP, naive_is_utc=False) is None  # session not in UTC
