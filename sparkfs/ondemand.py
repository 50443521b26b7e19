"""On-demand features: transforms that run at request time, online and in training sets.

An on-demand transform is a ``@transform(..., on_demand=True)``. Its parameters are
request-time data (columns of the spine / ``request_data``, dtypes from ``inputs=``)
and/or looked-up features (``features={param: "group:feature"}``). It is registered with
``fs.apply([t])`` and referenced as ``"<transform>:<output>"`` (or ``"<transform>:*"``).

The contract shared by the online path and training sets (both call this module, so
both see exactly the same values):

1. ``plan = plan_on_demand(catalog, refs)`` — ``refs`` may mix group and on-demand refs; only
   the on-demand ones are planned. ``plan.group_refs`` are the group features the
   transforms read (fetch them in addition to what was requested);
   ``plan.output_names`` the requested outputs (short names, request order);
   ``plan.request_columns`` the request-data columns needed (name -> dtype or None).
2. Build one frame with the request columns and the looked-up features under their
   short names (``ref.feature``), one row per entity/spine row.
3. ``plan.apply_pandas(df)`` / ``plan.apply_spark(df)`` return it with the outputs added
   (missing values as None/NaN/null). Each transform runs once on the whole frame.

>>> import pandas as pd
>>> from sparkfs.transforms import transform
>>> @transform(output="long", on_demand=True, inputs={"n": "long"})
... def twice(n):
...     return n * 2
>>> plan = OnDemandPlan([twice], [FeatureRef("twice", None, "twice")], {})
>>> plan.apply_pandas(pd.DataFrame({"n": [1, None]}))["twice"].tolist()
[2, <NA>]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .definitions import FeatureRef
from .dtypes import spark_type
from .errors import (
    CodeNotLoadedError,
    DefinitionError,
    NotFoundError,
    ValidationError,
)
from .transforms import Transform

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

    from .catalog import Catalog

__all__ = ["OnDemandPlan", "plan_on_demand", "split_refs", "CodeNotLoadedError"]


def split_refs(catalog: Catalog, refs: Iterable[Any]) -> tuple[list[FeatureRef], list[FeatureRef]]:
    """``(group_refs, on_demand_refs)``, each in request order."""
    groups: list[FeatureRef] = []
    od: list[FeatureRef] = []
    cache: dict[str, bool] = {}
    for r in refs:
        ref = FeatureRef.parse(r)
        if ref.group not in cache:
            cache[ref.group] = catalog.is_on_demand(ref.group)
        (od if cache[ref.group] else groups).append(ref)
    return groups, od


class OnDemandPlan:
    """Which on-demand transforms run, what they read, what they add (module docstring).

    ``feature_dtypes`` maps looked-up feature short names to dtypes (used to type inputs).
    """

    def __init__(self, transforms: Sequence[Transform], requested: Sequence[FeatureRef],
                 feature_dtypes: dict[str, str], group_refs: Sequence[FeatureRef] = ()) -> None:
        self.transforms = list(transforms)
        self.requested = list(requested)
        self.group_refs = list(group_refs)
        self.feature_dtypes = dict(feature_dtypes)
        by_name = {t.name: t for t in self.transforms}
        self.outputs: dict[str, list[str]] = {}  # transform -> requested outputs
        for ref in self.requested:
            t = by_name[ref.group]
            names = t.output_names if ref.feature == "*" else [ref.feature]
            for n in names:
                if n not in t.output_names:
                    raise NotFoundError(f"on-demand transform {t.name!r} has no output {n!r}; "
                                        f"it has: {', '.join(t.output_names)}")
                if any(n in v for v in self.outputs.values()):
                    raise DefinitionError(f"on-demand output {n!r} is requested twice (or by "
                                          "two transforms); request each output once")
                self.outputs.setdefault(t.name, []).append(n)
        self.output_names = [n for v in self.outputs.values() for n in v]
        self.output_dtypes = {f.name: f.dtype for t in self.transforms for f in t.outputs
                              if f.name in self.output_names}
        self.request_columns: dict[str, str | None] = {}
        for t in self.transforms:
            for p in t.inputs:
                if p in t.features:
                    continue
                if p in self.feature_dtypes:
                    raise DefinitionError(
                        f"on-demand transform {t.name!r} reads request column {p!r}, which is "
                        "also the name of a looked-up feature; rename the parameter")
                self.request_columns.setdefault(p, t.input_dtypes.get(p))
        # per transform, worked out once: (its frame columns, {parameter: frame column},
        # dtypes of the parameters its declaration leaves open)
        dtypes = self._dtypes()
        self._wiring: list[tuple[Transform, list[str], dict[str, str], dict[str, str]]] = []
        for t in self.transforms:
            cols = self._columns(t)
            self._wiring.append((t, cols, dict(zip(t.inputs, cols)),
                                 {p: dtypes[c] for p, c in zip(t.inputs, cols) if c in dtypes}))
        self._needed = {c for _, cols, _, _ in self._wiring for c in cols}

    def _columns(self, t: Transform) -> list[str]:
        """The frame column each parameter of ``t`` reads."""
        return [FeatureRef.parse(t.features[p]).feature if p in t.features else p
                for p in t.inputs]

    def _dtypes(self) -> dict[str, str]:
        d = {k: v for k, v in self.request_columns.items() if v}
        d.update(self.feature_dtypes)
        return d

    def check_columns(self, columns: Iterable[str], what: str = "request data") -> None:
        """Raise ``ValidationError`` naming the missing columns and who needs them."""
        have = columns if isinstance(columns, (set, frozenset, dict)) else set(columns)
        if self._needed.issubset(have):
            return
        have = set(have)
        for t, cols, _, _ in self._wiring:
            missing = [c for c in cols if c not in have]
            if missing:
                raise ValidationError(f"on-demand transform {t.name!r} needs {missing} in "
                                      f"{what}; it has {sorted(have)}")

    def apply_pandas(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with the requested outputs added (each transform runs once on all rows)."""
        self.check_columns(df.columns, "the frame")
        out = df.copy()
        for n, s in self.compute({c: df[c] for c in df.columns}).items():
            out[n] = s.set_axis(out.index)
        return out

    def compute(self, columns: dict[str, pd.Series], tz: str = "UTC") -> dict[str, pd.Series]:
        """The requested outputs from a mapping of equally long columns (what
        ``apply_pandas`` does, without building frames; batch scoring uses it on each Arrow
        batch). ``tz``: the time zone naive timestamps are read in (Spark hands pandas
        naive session-time values)."""
        return self._run_each(columns, "run_columns", tz)

    def compute_values(self, columns: dict[str, Sequence[Any]]) -> dict[str, list]:
        """``compute`` on equally long Python lists, returning lists of Python values
        (missing -> None): the online path. Each transform still runs once, on an N-row
        pandas input.

        >>> from sparkfs.transforms import transform
        >>> @transform(output="long", on_demand=True, inputs={"n": "long"})
        ... def thrice(n):
        ...     return n * 3
        >>> OnDemandPlan([thrice], [FeatureRef("thrice", None, "thrice")], {}).compute_values(
        ...     {"n": [1, None]})
        {'thrice': [3, None]}
        """
        return self._run_each(columns, "run_values")

    def _run_each(self, columns: Mapping[str, Any], method: str,
                  tz: str | None = None) -> dict[str, Any]:
        """Each transform once, through ``Transform.<method>`` (``run_columns`` on Series,
        ``run_values`` on lists); the requested outputs by name."""
        self.check_columns(columns, "the frame")
        result: dict[str, Any] = {}
        extra = {} if tz is None else {"tz": tz}
        for t, _, reads, frame_dtypes in self._wiring:
            res = getattr(t, method)({p: columns[c] for p, c in reads.items()}, frame_dtypes,
                                     **extra)
            for n in self.outputs[t.name]:
                result[n] = res[n]
        return result

    def apply_spark(self, df: "DataFrame", sources: Mapping[str, str] | None = None,
                    names: Mapping[str, str] | None = None) -> "DataFrame":
        """The same on a Spark DataFrame, through each transform's pandas UDF.

        ``sources`` maps a looked-up feature's short name to the column of ``df`` holding
        it (default: the short name); ``names`` maps an output to the column it is added
        as (default: the output's name)."""
        from pyspark.sql import functions as F

        sources = dict(sources or {})
        names = dict(names or {})
        self.check_columns([c for c in df.columns] + list(sources), "the frame")
        dtypes = self._dtypes()
        for t in self.transforms:
            cols = self._columns(t)
            frame_dtypes = {p: dtypes[c] for p, c in zip(t.inputs, cols) if c in dtypes}
            col = t.spark(*[F.col(f"`{sources.get(c, c)}`") for c in cols], dtypes=frame_dtypes)
            wanted = self.outputs[t.name]
            if not t.multi:
                df = df.withColumn(names.get(wanted[0], wanted[0]), col)
                continue
            tmp = f"__sparkfs_od_{t.name}"
            df = df.withColumn(tmp, col)
            for n in wanted:
                df = df.withColumn(names.get(n, n), F.col(tmp).getField(n).cast(
                    spark_type(self.output_dtypes[n])))
            df = df.drop(tmp)
        return df

    def __repr__(self) -> str:
        return (f"OnDemandPlan(transforms={[t.name for t in self.transforms]}, "
                f"outputs={self.output_names}, group_refs={[str(r) for r in self.group_refs]}, "
                f"request_columns={list(self.request_columns)})")


def plan_on_demand(catalog: Catalog, refs: Sequence[Any]) -> OnDemandPlan:
    """Plan the on-demand refs among ``refs`` (group refs are ignored)."""
    _, od_refs = split_refs(catalog, refs)
    transforms: dict[str, Transform] = {}
    for ref in od_refs:
        if ref.version not in (None, 0):
            raise NotFoundError(f"on-demand transform {ref.group!r} has no version {ref.version}; "
                                f"reference it as '{ref.group}:{ref.feature}'")
        if ref.group not in transforms:
            transforms[ref.group] = catalog.get_on_demand(ref.group)
    group_refs: list[FeatureRef] = []
    dtypes: dict[str, str] = {}
    owner: dict[str, str] = {}
    for t in transforms.values():
        for r in t.features.values():
            ref = FeatureRef.parse(r)
            g = catalog.get_group(ref.group, ref.version)  # NotFoundError names the group
            f = g.feature(ref.feature)
            key = f"{g.name}@{g.version}:{f.name}"
            if owner.setdefault(f.name, key) != key:
                raise DefinitionError(
                    f"on-demand transforms read two features named {f.name!r} ({owner[f.name]} "
                    f"and {key}); request them from separate calls or rename one")
            if ref not in group_refs:
                group_refs.append(ref)
            dtypes[f.name] = f.dtype
    return OnDemandPlan(list(transforms.values()), od_refs, dtypes, group_refs)


