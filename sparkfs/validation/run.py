"""Running a group's expectations on a batch (``validate_batch``, before the Delta commit)
and recording the outcome (``record_validation``, after it).

great-expectations runs on the batch where it lives: a Spark DataFrame through its Spark
execution engine (no collect), a pandas DataFrame through its pandas engine. It decides
which expectations hold. When one failed (or has a ``mostly`` tolerance), one more pass in
the same engine counts, per row-level expectation, the rows that break it, and checks those
counts against great-expectations' verdict. Under ``quarantine`` the rows breaking a failed
expectation are split off lazily (``invalid_df``, with the list of failed expectations per
row in ``_failed_expectations``); ``valid_df`` holds every other row, so written +
quarantined = input.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._extras import require
from ..definitions import FeatureGroup
from ..errors import DefinitionError, SparkfsError, ValidationError, first_line
from .reports import ValidationReport, store_report
from .rules import pandas_failures, spark_failures
from .suite import ROW_LEVEL, Expectations, as_suite

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog
    from ..offline.tables import OfflineStore

#: Column of ``invalid_df`` and of the quarantine table listing the failed expectations.
FAILED_COLUMN = "_failed_expectations"


@dataclass
class ValidationOutcome:
    """What ``validate_batch`` found. ``valid_df``: rows to write (the whole batch unless
    rows were quarantined); ``invalid_df``: quarantined rows with ``_failed_expectations``,
    or None; both lazy Spark DataFrames for Spark input, pandas for pandas input."""

    valid_df: Any
    invalid_df: Any
    report: ValidationReport

    @property
    def rows_quarantined(self) -> int:
        return self.report.rows_quarantined


def validate_batch(catalog: "Catalog", group: FeatureGroup, df: Any,
                   run_id: str | None = None, *, rows: int | None = None) -> ValidationOutcome:
    """Check ``df`` (Spark or pandas) against ``group``'s expectations (a refused batch's
    report is stored in ``catalog``'s registry). ``rows``: the batch's row count when the
    caller already counted it (ingest's row checks did), which spares a pass over a Spark
    batch when every expectation held.

    ``strict``: any failure stores the report and raises ``ValidationError``. ``quarantine``:
    rows failing row-level expectations are split off; a failed batch-level expectation
    (e.g. ``expect_table_row_count_to_be_between``) still refuses the batch.
    """
    suite = as_suite(group.expectations)
    engine = _engine_of(df, group)
    if engine == "arrow":
        df, engine = df.to_pandas(), "pandas"
    report = ValidationReport(group=group.name, group_version=group.version,
                              run_id=run_id or "", policy=group.validation, status="passed",
                              rows_input=0, engine=engine, suite=suite.name)
    if not len(suite):
        report.rows_input = rows if rows is not None else _count(df, engine)
        return ValidationOutcome(df, None, report)
    columns = list(df.columns)
    labels = suite.labels()
    _check_columns(group, suite, labels, columns)
    verdicts = _run_gx(group, suite, labels, df, engine)
    row_items = [i for i, e in enumerate(suite) if e["type"] in ROW_LEVEL]
    failed_rows = [i for i in row_items if not verdicts[i]["success"]]
    if failed_rows or any("mostly" in suite.items[i]["kwargs"] for i in row_items):
        counts = _count_failures(df, engine, suite, row_items, failed_rows)
    else:
        # Every row-level expectation held without a `mostly` tolerance: no row breaks any
        # of them, so one cheap count (no columns read) is all the report needs.
        n_rows = rows if rows is not None else _count(df, engine)
        counts = {"n": n_rows, "bad": 0, **{i: 0 for i in row_items}}
    _judge(catalog, group, suite, labels, verdicts, counts, row_items, report)
    if not failed_rows:
        return ValidationOutcome(df, None, report)
    report.status = "quarantined"
    report.rows_quarantined = counts["bad"]
    failing = [(suite.items[i], labels[i]) for i in failed_rows]
    valid, invalid = (_split_spark(df, failing) if engine == "spark"
                      else _split_pandas(df, failing))
    return ValidationOutcome(valid, invalid, report)


def _judge(catalog: "Catalog", group: FeatureGroup, suite: Expectations, labels: list[str],
           verdicts: dict[int, dict], counts: dict, row_items: list[int],
           report: ValidationReport) -> None:
    """Fill ``report`` with the verdicts and the breaking rows counted per row-level
    expectation; store it and raise ``ValidationError`` when the batch is refused."""
    report.rows_input = n = counts["n"]
    for i, (item, label) in enumerate(zip(suite, labels)):
        v = verdicts[i]
        row_level = i in row_items
        bad = counts[i] if row_level else v.get("unexpected_count")
        if row_level and "mostly" not in item["kwargs"] and v["success"] != (bad == 0):
            raise SparkfsError(
                f"feature group {group.name!r}: great-expectations says {label} "
                f"{'held' if v['success'] else 'failed'} but sparkfs counted {bad} breaking "
                f"row(s) of {n}; the row checks disagree with great-expectations for this "
                "expectation, so the batch was not written. Please report this.")
        report.results.append({
            "label": label, "type": item["type"], "kwargs": item["kwargs"],
            "success": bool(v["success"]), "row_level": row_level,
            "unexpected_count": bad,
            "unexpected_percent": None if bad is None or not n else 100.0 * bad / n,
            "observed_value": v.get("observed_value"),
        })
    failed_batch = [r for r in report.results if not r["success"] and not r["row_level"]]
    if report.failed and (group.validation == "strict" or failed_batch):
        report.status = "refused"
        store_report(catalog, report)
        why = ""
        if group.validation == "quarantine":
            why = (" (" + ", ".join(r["label"] for r in failed_batch) + " judge(s) the batch as "
                   "a whole, so no single row can be quarantined for it)")
        raise ValidationError(
            f"feature group {group.name!r} v{group.version}: batch of {n} row(s) refused by its "
            f"expectations (validation={group.validation!r}){why}: {report.summary()}; nothing "
            f"was written. See `sparkfs validation-report {group.name}`.")


def replayed_outcome(catalog: "Catalog", group: FeatureGroup, df: Any, run_id: str | None,
                     rows: int, delta_version: int, then_run_id: str,
                     ) -> ValidationOutcome | None:
    """The outcome of a batch that holds exactly the rows commit ``delta_version`` (of run
    ``then_run_id``) wrote
    (a replay found by its fingerprint: ``sparkfs.offline.fingerprint``), taken from that
    commit's stored report instead of running great-expectations again, or None (then
    ``validate_batch`` runs). Taken only when great-expectations must find the same:
    every expectation is row-level (``ROW_LEVEL``: its verdict and bad-row count depend
    only on the rows, which are the same), the suite is the one the report ran (same
    types, arguments and labels, in order) and the report passed with ``rows`` rows.

    >>> replayed_outcome.__name__  # exercised by tests/test_validation_replay.py
    'replayed_outcome'
    """
    import json

    from .reports import report_of_commit

    suite = as_suite(group.expectations)
    if not len(suite) or any(e["type"] not in ROW_LEVEL for e in suite):
        return None
    then = report_of_commit(catalog, group, delta_version, then_run_id)
    if then is None or then.status != "passed" or then.rows_input != rows:
        return None

    def ran(results: list[tuple]) -> str:
        return json.dumps(results, sort_keys=True, default=str)

    if ran([(r.get("type"), r.get("kwargs"), r.get("label")) for r in then.results]) != \
            ran([(e["type"], e["kwargs"], label) for e, label in zip(suite, suite.labels())]):
        return None
    report = ValidationReport(group=group.name, group_version=group.version,
                              run_id=run_id or "", policy=group.validation, status="passed",
                              rows_input=rows, engine=then.engine, suite=suite.name,
                              results=[dict(r) for r in then.results])
    return ValidationOutcome(df, None, report)


#: the arguments a row-level expectation may have and still be judged from the counts the
#: write pass takes (``counted_suite``); another (``row_condition``, a date-string bound, ...)
#: leaves the suite to great-expectations' own pass
_COUNTED_KWARGS = frozenset({"column", "min_value", "max_value", "strict_min", "strict_max",
                             "value_set", "regex", "value", "mostly"})


#: the row-level types whose breaking rows are a column's nulls (or non-nulls): counted from
#: the Arrow batches' null counts, with no flag
_NULL_TYPES = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null")


@dataclass
class CountedSuite:
    """A strict group's suite judged from counts the write pass takes as its rows go by:
    the batch is not read again. The tasks count the nulls of each named column
    (``columns``) in their Arrow batches; the other expectations (``flagged``: all but
    ``not_be_null`` and ``be_null``) are checked by the JVM on the rows' way to the pass:
    each row carries ``flags()``, a bigint whose bit ``b`` is set when the row breaks
    expectation ``flagged[b]`` (``rules.spark_failures``, the conditions that count and
    quarantine breaking rows on every path), and the tasks count the rows with each bit
    set. ``outcome`` hands those counts to great-expectations, which decides each verdict
    with its own rule (the expectation's ``_validate``: ``mostly`` over the non-null rows,
    or over all rows for ``not_be_null``). Built by ``counted_suite``.

    >>> from sparkfs import Entity, FeatureGroup, Field
    >>> from sparkfs.validation import expect
    >>> g = FeatureGroup("g", [Entity("e", join_keys=["k"])], "ts", [Field("x", "double")],
    ...                  expectations=[expect("column_values_to_not_be_null", column="x"),
    ...                                expect("column_values_to_be_between", column="x",
    ...                                       min_value=0, mostly=0.9)])
    >>> counted = counted_suite(g, {"k": "string", "ts": "timestamp", "x": "double"})
    >>> counted.columns, counted.flagged
    (['x'], [1])
    """

    group: FeatureGroup
    suite: Expectations
    labels: list[str]
    expectations: list[Any]  # great-expectations' own objects, one per item
    columns: list[str]  # the columns the expectations name, in order of first mention
    flagged: list[int]  # the expectations checked by the JVM, one flag bit each

    #: flag bits a bigint holds (the sign bit is left alone)
    MAX_BITS = 63

    def flags(self) -> Any:
        """The Spark bigint column of a row's flags (see the class docstring); None when
        no expectation needs one."""
        from pyspark.sql import functions as F

        if not self.flagged:
            return None
        flags = F.lit(0).cast("long")
        for bit, i in enumerate(self.flagged):
            broken = spark_failures(self.suite.items[i])
            flags = flags.bitwiseOR(F.when(broken, F.lit(1 << bit)).otherwise(F.lit(0)))
        return flags

    def outcome(self, catalog: "Catalog", rows: int, ones: list[int], nulls: list[int],
                df: Any, run_id: str | None = None) -> ValidationOutcome:
        """The outcome of the batch ``df`` of ``rows`` rows, ``ones[b]`` of which had flag
        bit ``b`` set and ``nulls[j]`` a null in ``columns[j]``: the verdicts
        great-expectations draws from those counts, in a report like ``validate_batch``'s;
        a failure stores the report and raises ``ValidationError``."""
        from great_expectations.core.metric_function_types import (
            SummarizationMetricNameSuffixes as Suffix,
        )

        if len(ones) != len(self.flagged) or len(nulls) != len(self.columns):
            raise SparkfsError(f"feature group {self.group.name!r}: {len(ones)} flag and "
                               f"{len(nulls)} null counts for {len(self.flagged)} flags and "
                               f"{len(self.columns)} columns; nothing was written")
        unexpected = Suffix.UNEXPECTED_COUNT.value
        verdicts: dict[int, dict] = {}
        counts: dict = {"n": rows}
        for i, (item, expectation) in enumerate(zip(self.suite, self.expectations)):
            null = int(nulls[self.columns.index(item["kwargs"]["column"])])
            if item["type"] == "expect_column_values_to_not_be_null":
                bad = null
            elif item["type"] == "expect_column_values_to_be_null":
                bad = rows - null
            else:
                bad = int(ones[self.flagged.index(i)])
            counts[i] = bad
            metrics = {"table.row_count": rows,
                       f"column_values.nonnull.{unexpected}": null,
                       f"{expectation.map_metric}.{unexpected}": bad}
            judged = expectation._validate(
                metrics=metrics, runtime_configuration={"result_format": "BOOLEAN_ONLY"})
            verdicts[i] = {"success": bool(judged["success"])}
        report = ValidationReport(group=self.group.name, group_version=self.group.version,
                                  run_id=run_id or "", policy=self.group.validation,
                                  status="passed", rows_input=rows, engine="spark",
                                  suite=self.suite.name)
        _judge(catalog, self.group, self.suite, self.labels, verdicts, counts,
               list(range(len(self.suite))), report)
        return ValidationOutcome(df, None, report)


def counted_suite(group: FeatureGroup, dtypes: dict[str, str]) -> CountedSuite | None:
    """``group``'s suite as a ``CountedSuite`` for a batch of these Spark column types
    (``dict(df.dtypes)``), or None when great-expectations must run its own pass: an
    expectation that is not row-level (it judges the batch as a whole), ``be_unique`` (a
    row breaks it only next to another), one with arguments the counts do not cover
    (``_COUNTED_KWARGS``) or whose values do not match its column's type (``_counted``),
    more flags than a bigint holds (``CountedSuite.MAX_BITS``), a group that quarantines,
    or a version of great-expectations whose expectations do not judge from counts.
    Raises ``ValidationError`` for a column the batch lacks and ``DefinitionError`` for
    arguments great-expectations refuses, before anything runs.

    >>> counted_suite.__name__  # see CountedSuite; exercised by tests/test_validation_counted.py
    'counted_suite'
    """
    suite = as_suite(group.expectations)
    if not len(suite) or group.validation != "strict":
        return None
    if any(item["type"] not in ROW_LEVEL or item["type"] == "expect_column_values_to_be_unique"
           or not set(item["kwargs"]) <= _COUNTED_KWARGS or "column" not in item["kwargs"]
           for item in suite):
        return None
    labels = suite.labels()
    _check_columns(group, suite, labels, list(dtypes))
    if not all(_counted(item, dtypes[item["kwargs"]["column"]]) for item in suite):
        return None
    named = list(dict.fromkeys(item["kwargs"]["column"] for item in suite))
    flagged = [i for i, item in enumerate(suite) if item["type"] not in _NULL_TYPES]
    if len(flagged) > CountedSuite.MAX_BITS:
        return None
    _gx_import(group)
    expectations = [_gx_expectation(item, i, label)
                    for i, (item, label) in enumerate(zip(suite, labels))]
    if not all(isinstance(getattr(e, "map_metric", None), str) and callable(
            getattr(e, "_validate", None)) for e in expectations):
        return None
    return CountedSuite(group, suite, labels, expectations, named, flagged)


_NUMERIC = re.compile(r"(tinyint|smallint|int|bigint|float|double|decimal\(\d+,\d+\))\Z")


def _counted(item: dict, dtype: str) -> bool:
    """Whether the counts judge ``item`` on a column of Spark type ``dtype`` as
    great-expectations' own run would: numeric bounds on a numeric column, lengths and
    patterns of strings, a set of numbers for a numeric column or of strings for a string
    one; nulls on any column. Anything else (a date-string bound, a string column compared
    with numbers) is left to great-expectations, which may cast or refuse.

    >>> _counted({"type": "expect_column_values_to_be_between",
    ...           "kwargs": {"column": "x", "min_value": 0}}, "double")
    True
    >>> _counted({"type": "expect_column_values_to_be_between",
    ...           "kwargs": {"column": "x", "min_value": "2013-01-01"}}, "timestamp")
    False
    >>> _counted({"type": "expect_column_values_to_be_in_set",
    ...           "kwargs": {"column": "s", "value_set": ["a", 1]}}, "string")
    False
    """
    t, kw = item["type"], item["kwargs"]

    def numbers(*values: Any) -> bool:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)

    numeric, string = bool(_NUMERIC.match(dtype)), dtype == "string"
    bounds = [kw[k] for k in ("min_value", "max_value", "value") if kw.get(k) is not None]
    if t in _NULL_TYPES:
        return True
    if t == "expect_column_values_to_be_between":
        return numeric and numbers(*bounds)
    if t in ("expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal"):
        return string and numbers(*bounds)
    if t in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        return string and isinstance(kw.get("regex"), str)
    if t in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        values = list(kw.get("value_set") or [])
        return bool(values) and ((numeric and numbers(*values))
                                 or (string and all(isinstance(v, str) for v in values)))
    return False

def record_validation(catalog: "Catalog", offline: "OfflineStore", group: FeatureGroup,
                      outcome: ValidationOutcome, run_id: str, delta_version: int | None) -> int:
    """After the batch's Delta commit: write the quarantined rows to the quarantine Delta
    table in ``offline`` (once per ``run_id``) and store the report in ``catalog``'s
    registry. Returns the rows quarantined."""
    from .quarantine import write_quarantine

    report = outcome.report
    n = 0
    if outcome.invalid_df is not None:
        n = write_quarantine(offline, group, outcome.invalid_df, run_id, delta_version)
        if n != report.rows_quarantined:
            raise SparkfsError(
                f"feature group {group.name!r}: {n} row(s) reached the quarantine table but "
                f"validation counted {report.rows_quarantined}; the batch's input changed "
                "between passes (is it nondeterministic? cache it before ingesting)")
    report.run_id = run_id
    report.delta_version = delta_version
    store_report(catalog, report)
    return n


# -- helpers -------------------------------------------------------------------------------------
def _engine_of(df: Any, group: FeatureGroup) -> str:
    mod = type(df).__module__
    if mod.startswith("pyspark"):
        return "spark"
    if mod.startswith("pandas") and type(df).__name__ == "DataFrame":
        return "pandas"
    if mod.startswith("pyarrow") and type(df).__name__ == "Table":
        return "arrow"
    raise ValidationError(f"cannot validate a {type(df).__name__} for feature group "
                          f"{group.name!r}: pass a Spark or pandas DataFrame")


def _count(df: Any, engine: str) -> int:
    return df.count() if engine == "spark" else len(df)


def _check_columns(group: FeatureGroup, suite: Expectations, labels: list[str],
                   columns: list[str]) -> None:
    for item, label in zip(suite, labels):
        kw = item["kwargs"]
        wanted = [kw["column"]] if "column" in kw else list(kw.get("column_list") or [])
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise ValidationError(
                f"feature group {group.name!r}: expectation {label} names column(s) {missing} "
                f"that the batch does not have (it has {columns}); fix the suite; nothing was "
                "written")


def _gx_expectation(item: dict, index: int, label: str):
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    meta = dict(item.get("meta") or {})
    meta["sparkfs_index"] = index
    try:
        return ExpectationConfiguration(type=item["type"], kwargs=dict(item["kwargs"]),
                                        meta=meta).to_domain_obj()
    except Exception as exc:  # GX raises its own and pydantic errors for bad kwargs
        raise DefinitionError(f"expectation {label} is not valid for great-expectations: "
                              f"{first_line(exc)}") from None


class _GxThreadState:
    """This thread's great-expectations objects, built on its first batch and reused: one
    ephemeral context, one data source per engine and one dataframe asset (with its
    whole-dataframe batch definition) per feature group table. Building them took ~0.1 s
    per batch; a batch only needs ``get_batch`` with its own dataframe. One per thread
    (``threading.local``): a context and its data sources are not shared across threads."""

    def __init__(self, gx: Any) -> None:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.sources: dict[str, Any] = {}
        self.batch_definitions: dict[tuple[str, str], Any] = {}

    def batch_definition(self, engine: str, table_name: str) -> Any:
        key = (engine, table_name)
        found = self.batch_definitions.get(key)
        if found is None:
            source = self.sources.get(engine)
            if source is None:
                sources = self.context.data_sources
                source = (sources.add_spark(name="sparkfs_spark", persist=False)
                          if engine == "spark" else sources.add_pandas(name="sparkfs_pandas"))
                self.sources[engine] = source
            found = source.add_dataframe_asset(name=table_name) \
                .add_batch_definition_whole_dataframe("batch")
            self.batch_definitions[key] = found
        return found


_GX_LOCAL = threading.local()


def _gx_state(gx: Any) -> _GxThreadState:
    state = getattr(_GX_LOCAL, "state", None)
    if state is None:
        state = _GX_LOCAL.state = _GxThreadState(gx)
    return state


def _gx_error(info: Any) -> str | None:
    """The first line of the error great-expectations caught while evaluating an
    expectation, or None. ``exception_info`` is either one record
    (``{"raised_exception": ..., "exception_message": ...}``, an error in the expectation
    itself) or, when a metric's computation failed, a dict of such records keyed by metric.

    >>> _gx_error({"raised_exception": False}) is None, _gx_error(None) is None
    (True, True)
    >>> _gx_error({"m": {"raised_exception": True, "exception_message": "boom\\nat ..."}})
    'boom'
    """
    if not isinstance(info, dict):
        return None
    records = [info] if "raised_exception" in info else \
        [v for v in info.values() if isinstance(v, dict)]
    for record in records:
        if record.get("raised_exception"):
            lines = str(record.get("exception_message") or "").strip().splitlines()
            return lines[0] if lines else "unknown error"
    return None


def _gx_import(group: FeatureGroup) -> Any:
    """great-expectations, imported quietly (a clear error when it is not installed)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    require("great_expectations", extra="validation",
            what=f"validating feature group {group.name!r} (it has expectations)")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    return gx


def _run_gx(group: FeatureGroup, suite: Expectations, labels: list[str], df: Any,
            engine: str) -> dict[int, dict]:
    """Run the suite with great-expectations; index -> {success, observed_value, ...}.
    Raises ``ValidationError`` naming the expectation when great-expectations could not
    evaluate one (its own error or a failed metric computation)."""
    gx = _gx_import(group)
    from great_expectations.core.result_format import ResultFormat

    batch_def = _gx_state(gx).batch_definition(engine, group.table_name)
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    out: dict[int, dict] = {}
    row = [i for i, e in enumerate(suite) if e["type"] in ROW_LEVEL]
    other = [i for i in range(len(suite)) if i not in row]
    # Row-level verdicts only need the boolean (sparkfs counts the rows in one pass);
    # batch-level ones report their observed value.
    for indexes, fmt in ((row, ResultFormat.BOOLEAN_ONLY), (other, ResultFormat.BASIC)):
        if not indexes:
            continue
        gsuite = gx.ExpectationSuite(
            name=suite.name or group.name,
            expectations=[_gx_expectation(suite.items[i], i, labels[i]) for i in indexes])
        result = batch.validate(gsuite, result_format=fmt)
        for r in result.results:
            if r.expectation_config is None:
                raise SparkfsError(f"feature group {group.name!r}: great-expectations returned a "
                                   "result without its expectation; nothing was written")
            i = int(r.expectation_config.meta["sparkfs_index"])
            error = _gx_error(r.exception_info)
            if error is not None:
                raise ValidationError(
                    f"feature group {group.name!r}: great-expectations could not evaluate "
                    f"{labels[i]}: {error}; check that the expectation suits the column's "
                    "type; nothing was written")
            res = r.result or {}
            out[i] = {"success": bool(r.success), "observed_value": _plain(res.get("observed_value")),
                      "unexpected_count": res.get("unexpected_count")}
    missing = [labels[i] for i in range(len(suite)) if i not in out]
    if missing:
        raise SparkfsError(f"great-expectations returned no result for {missing}")
    return out


def _plain(value: Any) -> Any:
    """A JSON-able version of an observed value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _count_failures(df: Any, engine: str, suite: Expectations, row_items: list[int],
                    failed_rows: list[int]) -> dict:
    """One pass: row count, rows breaking each row-level expectation, rows breaking any
    failed one (those are quarantined)."""
    if engine == "pandas":
        flags = {i: pandas_failures(df, suite.items[i]) for i in row_items}
        out: dict = {"n": len(df)}
        out.update({i: int(f.sum()) for i, f in flags.items()})
        bad = None
        for i in failed_rows:
            bad = flags[i] if bad is None else (bad | flags[i])
        out["bad"] = 0 if bad is None else int(bad.sum())
        return out
    from pyspark.sql import functions as F

    flagged = df.select(*[spark_failures(suite.items[i]).alias(f"f{i}") for i in row_items]) \
        if row_items else df.select(F.lit(True).alias("_"))
    any_bad = F.lit(False)
    for i in failed_rows:
        any_bad = any_bad | F.col(f"f{i}")
    row = flagged.agg(F.count(F.lit(1)).alias("n"),
                      *[F.sum(F.col(f"f{i}").cast("long")).alias(f"f{i}") for i in row_items],
                      F.sum(any_bad.cast("long")).alias("bad")).first()
    out = {"n": int(row["n"]), "bad": int(row["bad"] or 0)}
    out.update({i: int(row[f"f{i}"] or 0) for i in row_items})
    return out


def _split_spark(df: Any, failing: list[tuple[dict, str]]):
    from pyspark.sql import functions as F

    labels = F.array(*[F.when(spark_failures(item), F.lit(label)) for item, label in failing])
    flagged = df.withColumn(FAILED_COLUMN, F.array_compact(labels))
    valid = flagged.where(F.size(F.col(FAILED_COLUMN)) == 0).drop(FAILED_COLUMN)
    invalid = flagged.where(F.size(F.col(FAILED_COLUMN)) > 0)
    return valid, invalid


def _split_pandas(df: Any, failing: list[tuple[dict, str]]):
    flags = {label: pandas_failures(df, item) for item, label in failing}
    failed = [[label for label, f in flags.items() if f.iat[pos]] for pos in range(len(df))]
    bad = [bool(x) for x in failed]
    good = [not b for b in bad]
    invalid = df[bad].copy()
    invalid[FAILED_COLUMN] = [x for x in failed if x]
    return df[good].copy(), invalid
