"""Reproducible training sets: stored data + a manifest that rebuilds it exactly.

``create_training_set`` runs the point-in-time join, then stores under
``{data_dir}/training_sets/{name}/v{n}/``:

``data/``   the rows (Parquet, with ``_spine_id`` fixing their order),
``spine/``  the spine as given (Parquet, with ``_spine_id``),

and registers ``training_set:{name}`` version ``n`` in the registry with the manifest
(group versions, the Delta version read per group, ttls, transform fingerprints, the
spine's hash, engine and options). Files are written to a temporary directory and
renamed into place before the registry entry is made, so a failure leaves nothing half
written. ``recreate_training_set`` reads the stored spine and re-runs the join with every
group pinned to its recorded Delta version (time travel) and recorded ttl: new ingests
since then change nothing.

>>> import tempfile, datetime as dt, pandas as pd
>>> from sparkfs import FeatureStore, Entity, FeatureGroup, Field
>>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
>>> g = FeatureGroup("planes", [Entity("plane", ["tailnum"])], "t", [Field("seats", "int")])
>>> _ = fs.apply([g])
>>> spine = pd.DataFrame({"tailnum": ["N1"], "ts": [dt.datetime(2013, 1, 1)]})
>>> ts = fs.create_training_set("demo", spine, ["planes:seats"], "ts", engine="duckdb")
>>> ts.version, fs.get_training_set("demo").manifest["groups"][0]["delta_version"]
(1, 0)
>>> fs.recreate_training_set("demo").to_arrow().equals(ts.to_arrow())
True
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError, SparkfsError
from . import build
from .manifest import delta_versions, fingerprint, ttls
from .plan import SPINE_ID
from .result import TrainingSet

if TYPE_CHECKING:  # pragma: no cover
    from ..store import FeatureStore

KIND = "training_set"
CREATE_OPTIONS = ("engine", "as_known_at", "key_map", "full_feature_names", "time_buckets",
                  "hot_key_rows", "broadcast_spine_rows", "threads", "description")


def training_sets_root(fs: "FeatureStore") -> str:
    return os.path.join(os.path.abspath(fs.config.data_dir), "training_sets")


def create_training_set(fs: "FeatureStore", name: str, spine: Any,
                        features: Sequence[str] | None, timestamp_col: str | None,
                        view: Any = None,
                        **options: Any) -> TrainingSet:
    """Build a training set and store its rows, spine and manifest as a new version of
    ``name``, of feature references or of a feature ``view`` (the manifest's ``"view"``
    records its ``name@version``; ``"features"`` its references, pinned). Options:
    ``engine`` (default ``"spark"``), ``as_known_at``, ``key_map``, ``full_feature_names``,
    ``time_buckets``, ``hot_key_rows``, ``broadcast_spine_rows``, ``threads``,
    ``description``."""
    from ..definitions import check_name

    check_name(name, "training set")
    unknown = sorted(set(options) - set(CREATE_OPTIONS))
    if unknown:
        raise SparkfsError(f"create_training_set got unknown option(s) {unknown}; "
                           f"known: {list(CREATE_OPTIONS)}")
    description = options.pop("description", "")
    engine = options.pop("engine", "spark")
    ts = build(fs, spine, features, timestamp_col, engine=engine, view=view, **options)
    version = max(fs.registry.versions(KIND, name), default=0) + 1
    final = os.path.join(training_sets_root(fs), name, f"v{version}")
    tmp = os.path.join(training_sets_root(fs), name, f".tmp-v{version}-{uuid.uuid4().hex[:8]}")
    try:
        _write(fs, ts, spine, timestamp_col, engine, tmp)
        if os.path.exists(final):  # left over by a crash before the registry entry
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    spec = {"name": name, "version": version, "description": description,
            "path": final, "data_path": os.path.join(final, "data"),
            "spine_path": os.path.join(final, "spine"),
            "manifest": ts.manifest, "manifest_fingerprint": fingerprint(ts.manifest)}
    try:
        fs.registry.put(KIND, name, version, spec, replace=False)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return get_training_set(fs, name, version)


def _write(fs: "FeatureStore", ts: TrainingSet, spine: Any, timestamp_col: str | None, engine: str,
           path: str) -> None:
    os.makedirs(path)
    data, spine_path = os.path.join(path, "data"), os.path.join(path, "spine")
    if engine == "spark":
        out = "file://" + data
        ts._frame_with_id().write.mode("error").parquet(out)
        if ts._spine_frame is None:  # the Spark engine always sets it
            raise SparkfsError(f"training set {ts!r}: the Spark join kept no numbered spine")
        ts._spine_frame.write.mode("error").parquet("file://" + spine_path)
    else:
        import pyarrow.parquet as pq

        os.makedirs(data)
        os.makedirs(spine_path)
        pq.write_table(ts._frame_with_id(), os.path.join(data, "part-0.parquet"))
        pq.write_table(ts._spine_table, os.path.join(spine_path, "part-0.parquet"))


def _spec(fs: "FeatureStore", name: str, version: int | None = None) -> dict:
    spec = fs.registry.get(KIND, name, version)
    if spec is None:
        known = sorted({s["name"] for s in fs.registry.list(KIND)})
        what = f"training set {name!r}" + (f" version {version}" if version is not None else "")
        raise NotFoundError(f"{what} does not exist; known training sets: {known or 'none'}")
    return spec


def get_training_set(fs: "FeatureStore", name: str, version: int | None = None) -> TrainingSet:
    """A stored training set (its latest version unless ``version``): reads the stored
    Parquet rows lazily, with the manifest."""
    spec = _spec(fs, name, version)
    if not os.path.isdir(spec["data_path"]):
        raise NotFoundError(
            f"training set {name!r} version {spec['version']} is registered but its data at "
            f"{spec['data_path']} is missing; recreate it with fs.recreate_training_set({name!r})")
    return TrainingSet(fs, manifest=spec["manifest"], path=spec["data_path"],
                       name=name, version=spec["version"])


def list_training_sets(fs: "FeatureStore") -> list[dict]:
    """Every stored training set version's registry entry (name, version, manifest...)."""
    return fs.registry.list(KIND)


def recreate_training_set(fs: "FeatureStore", name: str, version: int | None = None) -> TrainingSet:
    """Rebuild a stored training set from its manifest: the stored spine, each group at
    its recorded group version, Delta version and ttl, the same engine and options.

    Refuses (``SparkfsError``) when the rebuilt spine's hash differs from the recorded one
    or a group's definition or an on-demand transform changed since."""
    spec = _spec(fs, name, version)
    m = spec["manifest"]
    for g in m["groups"]:
        current = fs.get_feature_group(g["name"], g["version"])
        if fingerprint(current.to_spec()) != g["definition_fingerprint"]:
            _check_same_structure(current, g)
    engine = m["engine"]
    spine_path = spec["spine_path"]
    if engine == "spark":
        spine = fs.spark.read.parquet("file://" + spine_path)
    else:
        import pyarrow.parquet as pq

        spine = pq.read_table(spine_path).sort_by(SPINE_ID)
    opts = dict(m.get("options", {}))
    ts = build(fs, spine, m["features"], m["timestamp_col"], engine=engine,
               as_known_at=m["as_known_at"], key_map=m.get("key_map") or None,
               delta_versions=delta_versions(m), ttls=ttls(m), keep_id=True, **opts)
    if ts.manifest["spine"]["hash"] != m["spine"]["hash"]:
        raise SparkfsError(
            f"training set {name!r}: the stored spine no longer hashes to the recorded "
            f"{m['spine']['hash']} (got {ts.manifest['spine']['hash']}); its files were changed")
    if ts.manifest.get("on_demand") != m.get("on_demand"):
        raise SparkfsError(
            f"training set {name!r}: on-demand transform code changed since it was created "
            f"(recorded {m.get('on_demand')}, now {ts.manifest.get('on_demand')})")
    ts.name, ts.version = name, spec["version"]
    return ts


def _check_same_structure(current, recorded: dict) -> None:
    """Metadata (description, owner, tags, online, ttl) may change: ttl is pinned from the
    manifest. Transforms with another fingerprint would mean other stored data."""
    now = {t.name: getattr(t, "fingerprint", "") for t in current.transforms}
    if now != recorded.get("transforms", {}):
        raise SparkfsError(
            f"feature group {recorded['label']}: transforms changed since the training set was "
            f"made (recorded {recorded.get('transforms')}, now {now})")
