"""``TrainingSet``: the result of a point-in-time join, in whichever form you want it.

Columns are the spine's columns (in order) then the features. Timestamps come back as
UTC (``timestamp[us, tz=UTC]`` in Arrow, tz-aware in pandas) whichever engine ran;
``to_arrow()`` gives the same table for the same inputs from both engines.

>>> import pyarrow as pa
>>> ts = TrainingSet(arrow=pa.table({"_spine_id": [0, 1], "x": [1.0, None]}),
...                  manifest={"engine": "duckdb"})
>>> ts.to_pandas()["x"].tolist()
[1.0, nan]
>>> ts.columns
['x']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from ..sql import quote_ident
from .plan import SPINE_ID, conform

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pyspark.sql import DataFrame

    from ..catalog import SparkProvider
    from .engines import Spine


class TrainingSet:
    """Point-in-time correct training data plus the manifest that can rebuild it.

    Backed by one of: a lazy Spark DataFrame (``engine="spark"``), an Arrow table
    (``engine="duckdb"``), or stored Parquet files (``fs.get_training_set``). Each has a
    ``_spine_id`` column that fixes the row order; the public forms drop it.

    ``spark`` (a ``SparkProvider``) is called only by ``to_spark()`` of Arrow- or
    Parquet-backed rows; without one, ``to_spark()`` uses the active session (or a new
    local one). ``to_arrow()`` / ``to_pandas()`` never need Spark.
    """

    def __init__(self, spark: "SparkProvider | None" = None, *, manifest: dict,
                 spark_df: "DataFrame | None" = None, arrow: pa.Table | None = None,
                 path: str | None = None, schema: pa.Schema | None = None,
                 name: str | None = None, version: int | None = None,
                 spine: "Spine | None" = None) -> None:
        if arrow is not None and schema is not None:
            arrow = conform(arrow, pa.schema([pa.field(SPINE_ID, pa.int64())] + list(schema)))
        self._spark = spark
        self._spark_df = spark_df
        self._arrow = arrow
        self._path = path
        self._schema = schema
        self.manifest = manifest
        self.name = name
        self.version = version
        self.spine = spine  # the numbered spine the join used (None when read back)

    @property
    def columns(self) -> list[str]:
        if self._schema is not None:
            return [n for n in self._schema.names if n != SPINE_ID]
        if self._spark_df is not None:
            return [c for c in self._spark_df.columns if c != SPINE_ID]
        return [c for c in self._with_id().column_names if c != SPINE_ID]

    def _with_id(self) -> pa.Table:
        if self._arrow is None:
            if self._spark_df is not None:
                tbl = self._spark_df.toArrow()
            else:
                import pyarrow.parquet as pq

                tbl = pq.read_table(self._path)
            tbl = tbl.sort_by(SPINE_ID)
            if self._schema is not None:
                tbl = conform(tbl, pa.schema([pa.field(SPINE_ID, pa.int64())] + list(self._schema)))
            self._arrow = tbl
        return self._arrow

    def to_arrow(self) -> pa.Table:
        """The rows as an Arrow table (collects a Spark result to the driver)."""
        tbl = self._with_id()
        return tbl.drop_columns([SPINE_ID]) if SPINE_ID in tbl.column_names else tbl

    def to_pandas(self) -> "pd.DataFrame":
        """The rows as pandas (UTC-aware timestamps; integer columns with nulls are float)."""
        return self.to_arrow().to_pandas()

    def to_spark(self, ordered: bool = True, spine_id: bool = False) -> "DataFrame":
        """The rows as a Spark DataFrame, sorted in spine order (lazy for the Spark engine).

        ``ordered=False`` skips the global sort of a Spark-engine result (a sampling job
        and a range shuffle): the same rows, each with its own spine row's values, in no
        particular order (batch scoring reads it so). ``spine_id=True`` keeps the
        ``_spine_id`` column (the spine row's number) so a caller can restore the order
        later."""
        from pyspark.sql import functions as F

        if self._spark_df is not None:
            df = self._spark_df.orderBy(SPINE_ID) if ordered else self._spark_df
            return df if spine_id else df.drop(SPINE_ID)
        if self._spark is None:
            from pyspark.sql import SparkSession

            spark = SparkSession.builder.getOrCreate()
        else:
            spark = self._spark()
        if self._path is not None and self._arrow is None:
            df = spark.read.parquet(_spark_path(self._path))
            cols = [c for c in df.columns if c != SPINE_ID or spine_id]
            if ordered:
                df = df.orderBy(SPINE_ID)
            return df.select(*[F.col(quote_ident(c, "spark")) for c in cols])
        return spark.createDataFrame(self._with_id() if spine_id else self.to_arrow())

    def _frame_with_id(self) -> "DataFrame | pa.Table":
        return self._spark_df.orderBy(SPINE_ID) if self._spark_df is not None else self._with_id()

    def __len__(self) -> int:
        if self._arrow is None and self._spark_df is not None:
            return self._spark_df.count()
        return self._with_id().num_rows

    def __repr__(self) -> str:
        label = f" {self.name!r} v{self.version}" if self.name else ""
        return (f"TrainingSet{label}(engine={self.manifest.get('engine')!r}, "
                f"columns={self.columns})")

    def _repr_html_(self) -> str:
        """The manifest as a notebook card (``sparkfs.ui.cards``)."""
        from ..ui.cards import manifest_card

        return manifest_card(self.manifest, self.name, self.version)


def _spark_path(path: str) -> str:
    return path if "://" in path else "file://" + path
