"""Point-in-time join engines behind one protocol, chosen in one place.

A ``JoinEngine`` prepares the spine (numbered by ``_spine_id``, UTC timestamps), summarises
it (min/max timestamp, rows, hash: what the manifest records and the joins prune by) and
joins a resolved ``Plan`` to it. Three implementations:

==========================  ==============================================================
``DuckDBEngine``            one DuckDB statement on this machine (``duckdb.py``)
``SparkBroadcastEngine``    a pandas/Arrow spine shipped to tasks over the history, each
                            answering it with DuckDB (``spark_broadcast.py``)
``SparkShuffleEngine``      spine and history shuffled together by key (``spark.py``)
==========================  ==============================================================

``choose_engine`` maps the public ``engine=`` name and options to one of them: ``"duckdb"``;
``"spark"`` is the broadcast strategy for a spine already in the driver's memory (pandas or
Arrow) of at most ``broadcast_spine_rows`` rows, the shuffle strategy otherwise (a Spark
DataFrame spine is never collected). Callers and tests may pass an engine object instead
of a name, e.g. ``SparkBroadcastEngine(spark_reads_files=True)`` to have Spark read the
history files as it does on object storage.

>>> choose_engine("duckdb", None).name
'duckdb'
>>> import pandas as pd
>>> type(choose_engine("spark", pd.DataFrame({"a": [1, 2]}))).__name__
'SparkBroadcastEngine'
>>> type(choose_engine("spark", pd.DataFrame({"a": [1, 2]}), broadcast_spine_rows=1)).__name__
'SparkShuffleEngine'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pyarrow as pa

from ..errors import SparkfsError

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import SparkProvider
    from ..offline.tables import OfflineStore
    from .plan import Plan

#: Names ``engine=`` accepts.
ENGINES = ("spark", "duckdb")


@dataclass
class Spine:
    """The numbered spine as an engine holds it: its Arrow schema (what plans resolve
    against), its rows in Arrow when they are in the driver's memory, and the Spark
    DataFrame the Spark engines join (None for DuckDB).

    >>> Spine(pa.schema([("ts", pa.timestamp("us", "UTC"))])).arrow is None
    True
    """

    schema: pa.Schema
    arrow: pa.Table | None = None
    frame: Any = None


@runtime_checkable
class JoinEngine(Protocol):
    """What a point-in-time join engine does (see the module docstring).

    >>> isinstance(choose_engine("duckdb", None), JoinEngine)
    True
    """

    #: the engine's public name, recorded in manifests ("duckdb" or "spark")
    name: str

    def options(self) -> dict:
        """The options a stored training set records to rebuild with the same engine."""
        ...

    def prepare_spine(self, spark: "SparkProvider", spine: Any, timestamp_col: str,
                      keep_id: bool = False) -> Spine:
        """The spine numbered by ``_spine_id`` (kept as given when ``keep_id``); ``spark``
        is called only by engines that need Spark."""
        ...

    def summary(self, spine: Spine, timestamp_col: str) -> dict:
        """``{"lo", "hi", "rows", "hash"}``: min/max timestamp (epoch µs), rows, hash."""
        ...

    def join(self, offline: "OfflineStore", plan: "Plan", spine: Spine, summary: dict) -> Any:
        """The spine with the plan's features (history read from ``offline``),
        ``_spine_id`` first, in spine order: an Arrow table (DuckDB) or a lazy Spark
        DataFrame (Spark)."""
        ...


def choose_engine(engine: "str | JoinEngine", spine: Any, *, time_buckets: int | None = None,
                  hot_key_rows: int | None = None, broadcast_spine_rows: int | None = None,
                  threads: int | None = None) -> JoinEngine:
    """The one place an engine name and options become a ``JoinEngine`` (module docstring).

    >>> choose_engine("polars", None)
    Traceback (most recent call last):
    ...
    sparkfs.errors.SparkfsError: engine 'polars' is not supported; use one of spark, duckdb
    """
    if not isinstance(engine, str):
        if not isinstance(engine, JoinEngine):
            raise SparkfsError(f"engine must be one of {', '.join(ENGINES)} or a JoinEngine, "
                               f"not {type(engine).__name__}")
        given = {"time_buckets": time_buckets, "hot_key_rows": hot_key_rows,
                 "broadcast_spine_rows": broadcast_spine_rows, "threads": threads}
        extra = sorted(k for k, v in given.items() if v is not None)
        if extra:
            raise SparkfsError(f"options {extra} go to the engine object itself, not beside "
                               f"it (got engine={type(engine).__name__})")
        return engine
    if engine not in ENGINES:
        raise SparkfsError(f"engine {engine!r} is not supported; use one of {', '.join(ENGINES)}")
    if engine == "duckdb":
        from .duckdb import DuckDBEngine

        return DuckDBEngine(threads=threads)
    from .spark import SparkShuffleEngine
    from .spark_broadcast import DEFAULT_BROADCAST_SPINE_ROWS, SparkBroadcastEngine

    limit = DEFAULT_BROADCAST_SPINE_ROWS if broadcast_spine_rows is None else broadcast_spine_rows
    rows = driver_rows(spine)
    strategy = SparkBroadcastEngine if rows is not None and 0 <= rows <= int(limit) \
        else SparkShuffleEngine
    return strategy(time_buckets=time_buckets, hot_key_rows=hot_key_rows,
                    broadcast_spine_rows=broadcast_spine_rows)


def driver_rows(spine: Any) -> int | None:
    """Rows of a spine held in the driver's memory (pandas, Arrow), None otherwise.

    >>> driver_rows(pa.table({"a": [1, 2, 3]})), driver_rows("not a spine")
    (3, None)
    """
    if isinstance(spine, (pa.Table, pa.RecordBatch)):
        return spine.num_rows
    import pandas as pd

    if isinstance(spine, pd.DataFrame):
        return len(spine)
    return None


__all__ = ["ENGINES", "JoinEngine", "Spine", "choose_engine", "driver_rows"]
