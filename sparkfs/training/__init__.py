"""Point-in-time correct training sets, on Spark or DuckDB.

Semantics (both engines, tested against a brute-force reference):

* For each spine row (join keys, timestamp ``t``) and each requested group, the
  features come from the history row with the greatest event time ``E <= t``; ties on
  ``E`` go to the latest ``_commit_time`` (the later ingest wins).
* With a group ttl, an answer with ``E < t - ttl`` is null (too old).
* ``as_known_at=True``: a row is visible only if it was also committed at or before
  ``t`` (``_commit_time <= t``), so later backfills and corrections cannot leak into the
  past; the best *visible* row wins.
* Spine rows are never dropped, duplicated or reordered. A row with no match, a null
  join key or a null timestamp gets nulls.
* Naive spine timestamps are UTC; aware ones are converted to UTC. Results carry UTC
  timestamps.
* Output: the spine's columns (label and others pass through), then features by short
  name. A name clash (two groups' features, or a feature and a spine column) is refused;
  ``full_feature_names=True`` names features ``{group}__{feature}``.
* ``key_map`` maps a join key to the spine column holding it (``{"origin": "airport"}``).
* Each group's Delta version is pinned when the call starts and exactly that version is
  read; the manifest records it (``ts.manifest["groups"][i]["delta_version"]``).

Options: ``full_feature_names`` (bool), ``time_buckets`` (Spark: hot keys are split over
this many time slices, default 64; 1 turns splitting off), ``hot_key_rows`` (Spark: the
spine + history rows that make a key hot; default automatic), ``broadcast_spine_rows``
(Spark: a pandas/Arrow spine up to this many rows is broadcast to the history instead of
shuffling the history by key; default 2,000,000, 0 turns it off), ``threads`` (DuckDB),
``delta_versions`` (``{"group@v": delta_version}`` pins), ``event_times`` (adds, per as-of
group, a column ``__event_time__{group}@{version}``: the event time of the history row
chosen for each spine row; off by default; used by batch scoring's evaluation log). See
``sparkfs.training.spark`` for the Spark algorithm.

>>> import tempfile, datetime as dt, pandas as pd
>>> from sparkfs import FeatureStore, Entity, FeatureGroup, Field
>>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
>>> airport = Entity("airport", join_keys=["origin"])
>>> weather = FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")])
>>> _ = fs.apply([weather])
>>> spine = pd.DataFrame({"origin": ["JFK"], "ts": [dt.datetime(2013, 1, 1)], "label": [1]})
>>> ts = fs.get_historical_features(spine, ["weather:temp"], "ts", engine="duckdb")
>>> ts.to_pandas()[["origin", "label", "temp"]].to_dict("records")
[{'origin': 'JFK', 'label': 1, 'temp': nan}]
>>> ts.manifest["groups"][0]["delta_version"]
0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import SparkfsError
from .engines import ENGINES, JoinEngine, Spine, choose_engine
from .plan import SPINE_ID, output_schema, resolve
from .result import TrainingSet

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog, SparkProvider
    from ..offline.tables import OfflineStore

PUBLIC_OPTIONS = ("full_feature_names", "time_buckets", "hot_key_rows",
                  "broadcast_spine_rows", "threads", "delta_versions", "event_times")


def get_historical_features(catalog: "Catalog", offline: "OfflineStore", spark: "SparkProvider",
                            spine: Any, features: Sequence[str] | None,
                            timestamp_col: str | None, engine: str = "spark", as_known_at: bool = False,
                            key_map: Mapping[str, str] | None = None, view: Any = None,
                            **options: Any) -> TrainingSet:
    """A point-in-time correct ``TrainingSet`` for ``spine`` (see the module docstring):
    definitions from ``catalog``, history from ``offline``; ``spark`` is called only by
    the Spark engine.

    >>> import tempfile, datetime as dt, pandas as pd
    >>> from sparkfs import FeatureStore, Entity, FeatureGroup, Field
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> _ = fs.apply([FeatureGroup("w", [Entity("a", ["origin"])], "t", [Field("temp", "double")])])
    >>> spine = pd.DataFrame({"origin": ["JFK"], "ts": [dt.datetime(2013, 1, 1)]})
    >>> def no_spark():
    ...     raise AssertionError("DuckDB needs no Spark")
    >>> get_historical_features(fs.catalog, fs.offline, no_spark, spine, ["w:temp"], "ts",
    ...                         engine="duckdb").columns
    ['origin', 'ts', 'temp']
    """
    unknown = sorted(set(options) - set(PUBLIC_OPTIONS))
    if unknown:
        raise SparkfsError(
            f"get_historical_features got unknown option(s) {unknown}; known: {list(PUBLIC_OPTIONS)}")
    return build(catalog, offline, spark, spine, features, timestamp_col, engine=engine,
                 as_known_at=as_known_at, key_map=key_map, view=view, **options)


def build(catalog: "Catalog", offline: "OfflineStore", spark: "SparkProvider", spine: Any,
          features: Sequence[str] | None,
          timestamp_col: str | None,
          engine: "str | JoinEngine" = "spark", as_known_at: bool = False,
          key_map: Mapping[str, str] | None = None, full_feature_names: bool = False,
          time_buckets: int | None = None, hot_key_rows: int | None = None,
          broadcast_spine_rows: int | None = None, threads: int | None = None,
          delta_versions: Mapping[str, int] | None = None,
          ttls: Mapping[str, str | None] | None = None, keep_id: bool = False,
          view: Any = None, event_times: bool = False) -> TrainingSet:
    """The engine-independent driver (``keep_id``: the spine already has ``_spine_id``,
    as a stored training set's spine does). ``engine``: a name or a ``JoinEngine``
    (``sparkfs.training.engines``)."""
    if not isinstance(timestamp_col, str):
        raise SparkfsError(f"timestamp_col must be a column name, got {timestamp_col!r}")
    join_engine = choose_engine(engine, spine, time_buckets=time_buckets,
                                hot_key_rows=hot_key_rows,
                                broadcast_spine_rows=broadcast_spine_rows, threads=threads)
    prepared = join_engine.prepare_spine(spark, spine, timestamp_col, keep_id=keep_id)
    plan = resolve(catalog, offline, features, prepared.schema, timestamp_col, as_known_at=as_known_at,
                   key_map=key_map, full_feature_names=full_feature_names,
                   delta_versions=delta_versions, ttls=ttls, view=view,
                   event_times=event_times)
    schema = output_schema(plan, prepared.schema)
    summary = join_engine.summary(prepared, timestamp_col)
    joined = join_engine.join(offline, plan, prepared, summary)
    options = {"full_feature_names": bool(full_feature_names), **join_engine.options()}
    if event_times:
        options["event_times"] = True
    from .manifest import build_manifest

    manifest = build_manifest(plan, join_engine.name, summary, dict(plan.request.key_map),
                              options, plan.request.pinned_refs)
    if isinstance(joined, pa.Table):
        return TrainingSet(spark, manifest=manifest, arrow=joined, schema=schema, spine=prepared)
    return TrainingSet(spark, manifest=manifest, spark_df=joined, schema=schema, spine=prepared)


__all__ = ["get_historical_features", "TrainingSet", "SPINE_ID", "ENGINES", "JoinEngine",
           "Spine", "choose_engine"]
