"""``fs.read_history(...)``: a lazy view of a group's Delta history at a version or time.

>>> import tempfile
>>> from sparkfs import FeatureStore, Entity, Field, FeatureGroup
>>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
>>> g = FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour", [Field("temp", "double")])
>>> _ = fs.apply([g])
>>> h = fs.read_history("weather", version=0)
>>> h.to_arrow().num_rows, h.delta_version
(0, 0)
>>> h.to_pandas().columns.tolist()
['origin', 'time_hour', 'temp', '_commit_time', '_run_id']

Spark's DataFrame methods are on ``to_spark()``, not on the ``History`` itself:

>>> h.count()
Traceback (most recent call last):
...
AttributeError: 'History' object has no attribute 'count'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..definitions import FeatureGroup

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from ..catalog import SparkProvider
    from .tables import OfflineStore


class History:
    """The rows of one Delta version of a group's history (latest, ``version`` or ``as_of``).

    ``to_arrow()`` and ``to_pandas()`` read through delta-rs without Spark;
    ``to_spark()`` gives a DataFrame whose executors read the files (use it for ``count``,
    ``filter`` and the rest of Spark's API). ``delta_version`` is the version it reads.

    ``offline`` is the store holding the history; ``spark`` (a ``SparkProvider``) is called
    only by ``to_spark()``, which reads with Delta's own reader when ``engine`` (the
    config's ``offline.engine``) is not ``"delta-rs"`` and the session has the Delta jars.

    >>> import tempfile
    >>> from sparkfs import FeatureStore, Entity, Field, FeatureGroup
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> _ = fs.apply([g])
    >>> History(fs.offline, g, spark=lambda: fs.spark).to_arrow().num_rows
    0
    """

    def __init__(self, offline: "OfflineStore", group: FeatureGroup, version: int | None = None,
                 as_of: Any = None, *, spark: "SparkProvider | None" = None,
                 engine: str = "delta-rs") -> None:
        self._offline = offline
        self._spark = spark
        self._engine = engine
        self.group = group
        table = offline.table(group, version, as_of)  # resolves and validates now
        self.delta_version: int = table.version()
        self._spark_df: DataFrame | None = None

    def to_arrow(self) -> "pa.Table":
        """The rows as an Arrow table (delta-rs; no Spark)."""
        return self._offline.read_arrow(self.group, self.delta_version)

    def to_pandas(self) -> "pd.DataFrame":
        """The rows as a pandas DataFrame (delta-rs; no Spark)."""
        return self.to_arrow().to_pandas()

    def to_spark(self) -> "DataFrame":
        """The rows as a lazy Spark DataFrame (Delta's reader when its jars are there)."""
        if self._spark_df is None:
            if self._spark is None:
                from ..errors import SparkfsError

                raise SparkfsError(f"{self!r} was made without a Spark provider; "
                                   "read it with to_arrow() or to_pandas()")
            spark = self._spark()
            if self._engine != "delta-rs":
                from ..sparkutil import has_delta_jars

                if has_delta_jars(spark):
                    self._spark_df = (spark.read.format("delta")
                                      .option("versionAsOf", self.delta_version)
                                      .load(self._offline.table_uri(self.group)))
                    return self._spark_df
            self._spark_df = self._offline.read_spark(spark, self.group, self.delta_version)
        return self._spark_df

    def __repr__(self) -> str:
        return (f"History(group={self.group.name!r}, group_version={self.group.version}, "
                f"delta_version={self.delta_version})")
