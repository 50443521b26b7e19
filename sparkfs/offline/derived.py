"""Derived features: a feature group's batch transforms, applied at ingest.

``apply_derived`` runs them in Spark (each through its pandas UDF) before validation and
the Delta commit; ``apply_derived_pandas`` does the same on a pandas batch. Both are
imported from ``sparkfs.offline.derived``. Importing this module does not import pyspark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ..definitions import Field  # noqa: F401  (Field: used by the doctest)
from ..dtypes import spark_type
from ..errors import TransformError
from ..transforms import Transform, transform  # noqa: F401  (transform: used by the doctest)

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from ..definitions import FeatureGroup

__all__ = ["apply_derived", "apply_derived_pandas"]


# -- derived features at ingest -----------------------------------------------------------------
def _live_transforms(group: "FeatureGroup") -> list[Transform]:
    out = []
    for t in group.transforms:
        if not isinstance(t, Transform):
            raise TransformError(
                f"feature group {group.name!r} version {group.version} derives "
                f"{[f.name for f in t.outputs]} with transform {t.name!r} "
                f"({getattr(t, 'source', '') or 'code not known'}), whose code is not imported in "
                "this process: import the repo that defines it and apply it "
                "(fs.apply([...]) or `sparkfs apply <repo>`) before ingesting")
        if t.on_demand:
            raise TransformError(
                f"feature group {group.name!r}: transform {t.name!r} is on-demand (it runs at "
                "request time); derived features need a batch transform (on_demand=False)")
        out.append(t)
    return out


def apply_derived(group: "FeatureGroup", df: "DataFrame") -> "DataFrame":
    """``df`` (a Spark batch of ``group``) with the group's derived features added, in
    declaration order (a transform may use an earlier one's output), cast to their
    declared dtypes. Raises ``TransformError`` for a missing input column or a group
    whose transforms are registry copies without code."""
    from pyspark.sql import functions as F

    dtypes = group.column_dtypes
    for t in _live_transforms(group):
        _require_inputs(group, t, df.columns)
        df = t.with_columns(df, *t.inputs, dtypes=dtypes)
        for f in t.outputs:
            df = df.withColumn(f.name, F.col(f.name).cast(spark_type(f.dtype)))
    return df


def apply_derived_pandas(group: "FeatureGroup", df: pd.DataFrame) -> pd.DataFrame:
    """The same as ``apply_derived`` on a pandas batch (no Spark).

    >>> from sparkfs.definitions import Entity, FeatureGroup
    >>> @transform(output="double")
    ... def spread(temp, dewp):
    ...     return temp - dewp
    >>> g = FeatureGroup("w", [Entity("a", ["origin"])], "time_hour",
    ...                  [Field("temp", "double"), Field("dewp", "double")], transforms=[spread])
    >>> apply_derived_pandas(g, pd.DataFrame({"temp": [5.0], "dewp": [1.0]}))["spread"].tolist()
    [4.0]
    """
    dtypes = group.column_dtypes
    out = df.copy()
    for t in _live_transforms(group):
        _require_inputs(group, t, list(out.columns))
        res = t.run_pandas({c: out[c] for c in t.inputs}, dtypes)
        frame = res if isinstance(res, pd.DataFrame) else res.to_frame()
        for c in frame.columns:
            out[c] = frame[c].set_axis(out.index).to_numpy() if frame[c].dtype == object \
                else frame[c].set_axis(out.index)
    return out


def _require_inputs(group: "FeatureGroup", t, columns: list[str]) -> None:
    """Refuse a batch that lacks one of transform ``t``'s input columns."""
    missing = [c for c in t.inputs if c not in columns]
    if missing:
        raise TransformError(
            f"feature group {group.name!r}: transform {t.name!r} needs column(s) {missing}, "
            f"which the batch does not have (it has {columns})")
