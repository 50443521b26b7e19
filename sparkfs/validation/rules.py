"""Row-level failure conditions for the expectation types in ``ROW_LEVEL``, in Spark and in
pandas, with great-expectations' semantics: a null (or pandas NaN) value never fails a
value check, only ``not_be_null`` counts it.

great-expectations decides whether an expectation holds for the batch; these conditions
say *which* rows break it, so a ``quarantine`` group can divert exactly those rows. Their
counts are checked against great-expectations' verdict on every batch.

>>> import pandas as pd
>>> pdf = pd.DataFrame({"d": [5.0, -1.0, None]})
>>> pandas_failures(pdf, {"type": "expect_column_values_to_be_between",
...                       "kwargs": {"column": "d", "min_value": 0}}).tolist()
[False, True, False]
"""

from __future__ import annotations

from typing import Any

from ..errors import DefinitionError
from ..sql import quote_ident
from .suite import ROW_LEVEL


def _bounds(kw: dict, lo: str, hi: str) -> tuple[Any, Any, bool, bool]:
    return kw.get(lo), kw.get(hi), bool(kw.get("strict_min")), bool(kw.get("strict_max"))


def spark_failures(item: dict):
    """A boolean Spark Column, never null: true where the row breaks ``item``."""
    from pyspark.sql import functions as F

    t, kw = item["type"], item["kwargs"]
    c = F.col(quote_ident(kw['column'], "spark"))
    present = c.isNotNull()
    if t == "expect_column_values_to_not_be_null":
        return c.isNull()
    if t == "expect_column_values_to_be_null":
        return present
    if t in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        v = c if t == "expect_column_values_to_be_between" else F.length(c)
        lo, hi, smin, smax = _bounds(kw, "min_value", "max_value")
        bad = F.lit(False)
        if lo is not None:
            bad = bad | ((v <= F.lit(lo)) if smin else (v < F.lit(lo)))
        if hi is not None:
            bad = bad | ((v >= F.lit(hi)) if smax else (v > F.lit(hi)))
        return present & F.coalesce(bad, F.lit(False))
    if t == "expect_column_value_lengths_to_equal":
        return present & (F.length(c) != F.lit(kw["value"]))
    if t == "expect_column_values_to_be_in_set":
        return present & ~c.isin(list(kw.get("value_set") or []))
    if t == "expect_column_values_to_not_be_in_set":
        return present & c.isin(list(kw.get("value_set") or []))
    if t == "expect_column_values_to_match_regex":
        return present & ~c.rlike(kw["regex"])
    if t == "expect_column_values_to_not_match_regex":
        return present & c.rlike(kw["regex"])
    if t == "expect_column_values_to_be_unique":
        from pyspark.sql import Window

        return present & (F.count(F.lit(1)).over(Window.partitionBy(c)) > 1)
    raise DefinitionError(f"{t} is not checked row by row (row-level types: {', '.join(ROW_LEVEL)})")


def pandas_failures(pdf: Any, item: dict):
    """A boolean pandas Series aligned with ``pdf``: true where the row breaks ``item``."""
    import pandas as pd

    t, kw = item["type"], item["kwargs"]
    s = pdf[kw["column"]]
    present = s.notna()
    if t == "expect_column_values_to_not_be_null":
        return ~present
    if t == "expect_column_values_to_be_null":
        return present
    if t in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        v = s if t == "expect_column_values_to_be_between" else s.where(present, "").astype(str).str.len()
        lo, hi, smin, smax = _bounds(kw, "min_value", "max_value")
        bad = pd.Series(False, index=pdf.index)
        if lo is not None:
            bad |= ((v <= lo) if smin else (v < lo)).fillna(False).astype(bool)
        if hi is not None:
            bad |= ((v >= hi) if smax else (v > hi)).fillna(False).astype(bool)
        return present & bad
    if t == "expect_column_value_lengths_to_equal":
        return present & (s.where(present, "").astype(str).str.len() != kw["value"])
    if t == "expect_column_values_to_be_in_set":
        return present & ~s.isin(list(kw.get("value_set") or []))
    if t == "expect_column_values_to_not_be_in_set":
        return present & s.isin(list(kw.get("value_set") or []))
    if t in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        hit = s.where(present, "").astype(str).str.contains(kw["regex"], regex=True)
        return present & (~hit if t == "expect_column_values_to_match_regex" else hit)
    if t == "expect_column_values_to_be_unique":
        return present & s.duplicated(keep=False)
    raise DefinitionError(f"{t} is not checked row by row (row-level types: {', '.join(ROW_LEVEL)})")
