"""The feature dtypes sparkfs understands: one record per dtype, every form it takes.

A feature, join key or transform column has one sparkfs dtype (``"double"``, ``"long"``...).
Each engine spells it its own way; this module is the one place that says how:

=================  =============  ============  ======================  ======================
dtype              Spark SQL      DuckDB        Arrow                   pandas (in transforms)
=================  =============  ============  ======================  ======================
``boolean``        boolean        BOOLEAN       bool                    boolean
``int``            int            INTEGER       int32                   Int32
``long``           bigint         BIGINT        int64                   Int64
``float``          float          FLOAT         float                   float32
``double``         double         DOUBLE        double                  float64
``string``         string         VARCHAR       string                  object (None missing)
``timestamp``      timestamp      TIMESTAMPTZ   timestamp[us, UTC]      datetime64[ns, UTC]
``date``           date           DATE          date32                  object
``array<float>``   array<float>   FLOAT[]       list<float>             object
``array<double>``  array<double>  DOUBLE[]      list<double>            object
=================  =============  ============  ======================  ======================

Besides its forms, a record says whether the dtype can be a join key (``string``, ``int``,
``long``) and as which dtype keys are compared (``int`` and ``long`` both as ``long``, so a
spine's int64 keys match an ``int`` key), which Spark source types ingest accepts for it
(lossless widening; ``bigint`` into ``int`` narrowed with a per-value range check), the
Python values the online fast path takes as they are, its integer range, whether
aggregations may sum it and in which dtype.

Missing values: null in Spark, DuckDB and Arrow; in pandas ``<NA>`` for ``boolean``/``int``/
``long``, NaN for ``float``/``double`` (NaN and null are one missing value there), ``NaT``
for timestamps, ``None`` in object columns.

>>> d = dtype("long")
>>> d.spark, d.duckdb, d.arrow, d.pandas
('bigint', 'BIGINT', DataType(int64), 'Int64')
>>> dtype("int").key_dtype.duckdb, dtype("double").can_be_key
('BIGINT', False)
>>> dtype("double").accepts_spark("bigint"), dtype("int").narrows_spark("bigint")
(True, True)
>>> dtype("decimal", "field 'price'")
Traceback (most recent call last):
...
sparkfs.errors.DefinitionError: field 'price' has dtype 'decimal', which sparkfs does not support; use one of: boolean, int, long, float, double, string, timestamp, date, array<float>, array<double>
"""  # noqa: E501 (doctest output)

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pyarrow as pa

from .errors import DefinitionError

__all__ = ["DType", "ALL", "KEY_DTYPES", "TIMESTAMP_ARROW", "dtype", "canonical",
           "spark_type", "duckdb_type", "arrow_type", "mismatch"]

#: Arrow type of every timestamp sparkfs stores (event times, commit times, features).
TIMESTAMP_ARROW = pa.timestamp("us", tz="UTC")

_INTS = ("tinyint", "smallint", "int", "bigint")


@dataclass(frozen=True)
class DType:
    """One sparkfs dtype and all its forms.

    ``name``          the sparkfs spelling (what ``Field(..., dtype)`` takes);
    ``spark``         Spark SQL type (DDL and ``cast``);
    ``duckdb``        DuckDB SQL type;
    ``arrow``         Arrow type of Delta history columns and training sets;
    ``pandas``        pandas dtype a transform sees (inputs and outputs);
    ``key_as``        dtype join keys of this dtype are compared as, or None: not a key;
    ``spark_sources`` Spark types (``simpleString``) ingest casts to it without loss;
    ``spark_narrows`` Spark types ingest narrows to it, checking every value's range;
    ``python``        Python types the online fast path takes as they are (exact types);
    ``int_range``     inclusive bounds of an integer dtype;
    ``numeric``       whether sum/mean/stddev aggregations apply;
    ``sum_as``        dtype sums (and ``sum`` aggregations) of it are taken in;
    ``avro``          Avro type of the dtype in stream payloads;
    ``mlflow``        MLflow ColSpec type of a model input column of this dtype, or None:
                      not supported as a model input yet. Integers are ``double``: a
                      missing value reaches the model as NaN, which MLflow refuses to
                      enforce into an integer column.

    >>> dtype("float")
    DType(name='float', spark='float', duckdb='FLOAT', arrow=DataType(float), pandas='float32', ...)
    """

    name: str
    spark: str
    duckdb: str
    arrow: pa.DataType
    pandas: Any
    key_as: str | None = None
    spark_sources: frozenset[str] = frozenset()
    spark_narrows: frozenset[str] = frozenset()
    python: tuple[type, ...] = ()
    int_range: tuple[int, int] | None = None
    numeric: bool = False
    sum_as: str = "double"
    avro: Any = None
    mlflow: str | None = None

    def __repr__(self) -> str:
        return (f"DType(name={self.name!r}, spark={self.spark!r}, duckdb={self.duckdb!r}, "
                f"arrow={self.arrow!r}, pandas={self.pandas!r}, ...)")

    @property
    def can_be_key(self) -> bool:
        """Whether a join key may have this dtype.

        >>> [n for n, d in ALL.items() if d.can_be_key]
        ['int', 'long', 'string']
        """
        return self.key_as is not None

    @property
    def key_dtype(self) -> "DType":
        """The dtype join keys of this dtype are compared as (spine and history alike).

        >>> dtype("int").key_dtype.spark, dtype("string").key_dtype.arrow
        ('bigint', DataType(string))
        """
        if self.key_as is None:
            raise DefinitionError(
                f"dtype {self.name!r} cannot be a join key; join keys must be one of "
                f"{', '.join(KEY_DTYPES)}")
        return ALL[self.key_as]

    @property
    def is_integer(self) -> bool:
        """``int`` and ``long``.

        >>> dtype("long").is_integer, dtype("double").is_integer
        (True, False)
        """
        return self.int_range is not None

    @property
    def bounds(self) -> tuple[int, int]:
        """Inclusive range of an integer dtype (``DefinitionError`` for another dtype).

        >>> dtype("int").bounds
        (-2147483648, 2147483647)
        """
        if self.int_range is None:
            raise DefinitionError(f"dtype {self.name!r} is not an integer dtype")
        return self.int_range

    @property
    def is_floating(self) -> bool:
        """``float`` and ``double`` (NaN is a missing value in pandas).

        >>> dtype("float").is_floating, dtype("long").is_floating
        (True, False)
        """
        return self.spark in ("float", "double")

    def accepts_spark(self, source: str) -> bool:
        """Whether ingest casts a Spark column of type ``source`` (``simpleString``) to this
        dtype without loss. ``void`` (all nulls) fits every dtype, and ``array<void>`` (lists
        that are all empty or hold only nulls) every array dtype.

        >>> dtype("double").accepts_spark("int"), dtype("int").accepts_spark("double")
        (True, False)
        >>> dtype("array<float>").accepts_spark("array<void>")
        True
        """
        if source == "array<void>" and self.name.startswith("array<"):
            return True
        return source == "void" or source in self.spark_sources

    def narrows_spark(self, source: str) -> bool:
        """Whether ingest narrows a Spark column of type ``source`` to this dtype, refusing
        the batch when a value does not fit (``bigint`` into ``int``).

        >>> dtype("int").narrows_spark("bigint"), dtype("long").narrows_spark("bigint")
        (True, False)
        """
        return source in self.spark_narrows


def _record(name: str, spark: str, duckdb: str, arrow: pa.DataType, pandas: Any,
            sources: tuple[str, ...], **kw: Any) -> DType:
    return DType(name, spark, duckdb, arrow, pandas, spark_sources=frozenset(sources), **kw)


_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)

#: Every dtype, by its sparkfs name, in documentation order.
ALL: Mapping[str, DType] = MappingProxyType({d.name: d for d in (
    _record("boolean", "boolean", "BOOLEAN", pa.bool_(), "boolean", ("boolean",),
            python=(bool,), numeric=True, sum_as="long", avro="boolean", mlflow="boolean"),
    _record("int", "int", "INTEGER", pa.int32(), "Int32", ("int", "smallint", "tinyint"),
            key_as="long", spark_narrows=frozenset({"bigint"}), python=(int,),
            int_range=_I32, numeric=True, sum_as="long", avro="int", mlflow="double"),
    _record("long", "bigint", "BIGINT", pa.int64(), "Int64", _INTS,
            key_as="long", python=(int,), int_range=_I64, numeric=True, sum_as="long",
            avro="long", mlflow="double"),
    # double -> float keeps float precision (documented)
    _record("float", "float", "FLOAT", pa.float32(), "float32", ("float", "double"),
            python=(float, int), numeric=True, avro="float", mlflow="float"),
    _record("double", "double", "DOUBLE", pa.float64(), "float64", ("double", "float") + _INTS,
            python=(float, int), numeric=True, avro="double", mlflow="double"),
    _record("string", "string", "VARCHAR", pa.string(), object, ("string",),
            key_as="string", python=(str,), avro="string", mlflow="string"),
    _record("timestamp", "timestamp", "TIMESTAMPTZ", TIMESTAMP_ARROW, "datetime64[ns, UTC]",
            ("timestamp", "timestamp_ntz"), python=(str, dt.datetime),
            avro={"type": "long", "logicalType": "timestamp-micros"}, mlflow="datetime"),
    _record("date", "date", "DATE", pa.date32(), object, ("date",),
            avro={"type": "int", "logicalType": "date"}, mlflow="datetime"),
    _record("array<float>", "array<float>", "FLOAT[]", pa.list_(pa.float32()), object,
            ("array<float>", "array<double>", "array<int>", "array<bigint>"),
            avro={"type": "array", "items": "float"}),
    _record("array<double>", "array<double>", "DOUBLE[]", pa.list_(pa.float64()), object,
            ("array<double>", "array<float>", "array<int>", "array<bigint>"),
            avro={"type": "array", "items": "double"}),
)})

#: dtypes a join key may have.
KEY_DTYPES: tuple[str, ...] = tuple(n for n in ("string", "int", "long") if ALL[n].can_be_key)


def canonical(name: Any) -> str | None:
    """The sparkfs spelling of ``name`` (case and spaces ignored), or None if unknown.

    >>> canonical("DOUBLE"), canonical("array< float >"), canonical("decimal")
    ('double', 'array<float>', None)
    """
    if isinstance(name, str):
        c = name.strip().lower().replace(" ", "")
        if c in ALL:
            return c
    return None


def dtype(name: Any, what: str = "column") -> DType:
    """The record of dtype ``name``; an unknown one raises ``DefinitionError`` naming
    ``what`` (the field or column) and the dtypes sparkfs supports.

    >>> dtype("Double").pandas
    'float64'
    """
    c = canonical(name)
    if c is None:
        raise DefinitionError(
            f"{what} has dtype {name!r}, which sparkfs does not support; "
            f"use one of: {', '.join(ALL)}")
    return ALL[c]


def spark_type(name: str) -> str:
    """Spark SQL type of dtype ``name``.

    >>> spark_type("long")
    'bigint'
    """
    return ALL[name].spark


def duckdb_type(name: str) -> str:
    """DuckDB type of dtype ``name``.

    >>> duckdb_type("timestamp")
    'TIMESTAMPTZ'
    """
    return ALL[name].duckdb


def arrow_type(name: str) -> pa.DataType:
    """Arrow type of dtype ``name``.

    >>> arrow_type("array<double>")
    ListType(list<item: double>)
    """
    return ALL[name].arrow


def mismatch(column: str, source: str, name: str) -> str:
    """The message for a column of Spark type ``source`` that dtype ``name`` does not accept.

    >>> mismatch("temp", "string", "long")
    "column 'temp' has type string, expected long (bigint)"
    """
    return f"column {column!r} has type {source}, expected {name} ({ALL[name].spark})"
