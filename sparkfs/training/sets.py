"""Reproducible training sets: stored data + a manifest that rebuilds it exactly.

``create_training_set`` runs the point-in-time join, then stores under
``{data_dir}/training_sets/{name}/v{n}/``:

``data/``   the rows (Parquet, with ``_spine_id`` fixing their order),
``spine/``  the spine as given (Parquet, with ``_spine_id``),

and registers ``training_set:{name}`` version ``n`` in the registry with the manifest
(group versions, the Delta version read per group, ttls, transform fingerprints, the
spine's hash, engine and options). ``get_training_set(name, version=None)`` reads one back.

Publishing is safe under concurrency. Files are written to a staging directory of this
call alone (``.staging-{token}/``, with an ``.owner`` file naming host and process), then
renamed to ``v{n}-{token}/`` (a path no other writer can use) and registered as version
``n`` in one registry transaction that refuses an existing version. A writer that loses
the race for ``n`` renames its own directory to ``n + 1`` and tries again: **two
concurrent calls with one name make two distinct versions**, each with its own data,
and no call ever deletes a directory it did not write. A failure removes only the
caller's own staging. Staging left by a killed process (its owner is gone from this
host, or, for another host, it is older than ``ABANDONED_AFTER_S``) is removed by the
next ``create_training_set`` of that name. ``recreate_training_set`` reads the stored
spine and re-runs the join with every group pinned to its recorded Delta version (time
travel) and recorded ttl: new ingests since then change nothing.

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

from ..errors import NotFoundError, RegistryError, SparkfsError
from . import build
from .manifest import delta_versions, fingerprint, ttls
from .plan import SPINE_ID
from .result import TrainingSet

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog, SparkProvider
    from ..offline.tables import OfflineStore

KIND = "training_set"
CREATE_OPTIONS = ("engine", "as_known_at", "key_map", "full_feature_names", "time_buckets",
                  "hot_key_rows", "broadcast_spine_rows", "threads", "description")


def training_sets_root(data_dir: str) -> str:
    """Where training sets of the store with data directory ``data_dir`` are stored.

    >>> training_sets_root("/data/fs")
    '/data/fs/training_sets'
    """
    return os.path.join(os.path.abspath(data_dir), "training_sets")


def create_training_set(catalog: "Catalog", offline: "OfflineStore", name: str, spine: Any,
                        features: Sequence[str] | None, timestamp_col: str | None,
                        view: Any = None, *, spark: "SparkProvider", root: str,
                        **options: Any) -> TrainingSet:
    """Build a training set and store its rows, spine and manifest as a new version of
    ``name`` under ``root`` (``training_sets_root(config.data_dir)``), of feature
    references or of a feature ``view`` (the manifest's ``"view"`` records its
    ``name@version``; ``"features"`` its references, pinned). Options: ``engine``
    (default ``"spark"``), ``as_known_at``, ``key_map``, ``full_feature_names``,
    ``time_buckets``, ``hot_key_rows``, ``broadcast_spine_rows``, ``threads``,
    ``description``. ``spark`` is called only by the Spark engine.

    >>> import tempfile, datetime as dt, pandas as pd
    >>> from sparkfs import FeatureStore, Entity, FeatureGroup, Field
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> _ = fs.apply([FeatureGroup("planes", [Entity("plane", ["tailnum"])], "t",
    ...                            [Field("seats", "int")])])
    >>> spine = pd.DataFrame({"tailnum": ["N1"], "ts": [dt.datetime(2013, 1, 1)]})
    >>> ts = create_training_set(fs.catalog, fs.offline, "demo", spine, ["planes:seats"], "ts",
    ...                          engine="duckdb", spark=lambda: fs.spark,
    ...                          root=training_sets_root(fs.config.data_dir))
    >>> ts.name, ts.version
    ('demo', 1)
    """
    from ..definitions import check_name

    check_name(name, "training set")
    unknown = sorted(set(options) - set(CREATE_OPTIONS))
    if unknown:
        raise SparkfsError(f"create_training_set got unknown option(s) {unknown}; "
                           f"known: {list(CREATE_OPTIONS)}")
    description = options.pop("description", "")
    engine = options.pop("engine", "spark")
    ts = build(catalog, offline, spark, spine, features, timestamp_col, engine=engine,
               view=view, **options)
    sets_root = root
    root = os.path.join(sets_root, name)
    os.makedirs(root, exist_ok=True)
    clean_abandoned(catalog, sets_root, name)
    registry = catalog.registry
    token = uuid.uuid4().hex
    staging = os.path.join(root, f".staging-{token}")
    _claim(staging)
    current = staging
    try:
        _write(ts, engine, staging)
        version = 0
        while True:
            version = max([version] + registry.versions(KIND, name)) + 1
            final = os.path.join(root, f"v{version}-{token}")
            os.rename(current, final)  # our own directory: no other writer uses this token
            current = final
            spec = {"name": name, "version": version, "description": description,
                    "path": final, "data_path": os.path.join(final, "data"),
                    "spine_path": os.path.join(final, "spine"),
                    "manifest": ts.manifest, "manifest_fingerprint": fingerprint(ts.manifest)}
            try:
                registry.put(KIND, name, version, spec, replace=False)
                break
            except RegistryError:
                if version not in registry.versions(KIND, name):
                    raise  # refused for another reason
                # another writer registered this version first: take the next one
    except BaseException:
        shutil.rmtree(current, ignore_errors=True)
        raise
    return get_training_set(catalog, name, version, spark=spark)


#: Staging of another host (whose processes this one cannot see) older than this is
#: abandoned.
ABANDONED_AFTER_S = 24 * 3600
_OWNER = ".owner"


def _claim(path: str) -> None:
    """Make the staging directory ``path`` with an owner file naming this process."""
    import json
    import socket
    import time

    os.makedirs(path)
    with open(os.path.join(path, _OWNER), "w") as f:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, f)


def clean_abandoned(catalog: "Catalog", root: str, name: str) -> list[str]:
    """Remove the directories under training set ``name`` (in ``root``, the training sets
    directory) that no registered version uses and no live writer owns (staging of killed
    processes; ``sparkfs.training.gc``); returns their paths.

    >>> import tempfile
    >>> from sparkfs import FeatureStore
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> clean_abandoned(fs.catalog, training_sets_root(fs.config.data_dir), "none_yet")
    []
    """
    from .gc import collect_garbage

    return [g.path for g in collect_garbage(catalog.registry, root, apply=True,
                                            max_age_s=ABANDONED_AFTER_S, name=name)]


def _write(ts: TrainingSet, engine: str, path: str) -> None:
    data, spine_path = os.path.join(path, "data"), os.path.join(path, "spine")
    if engine == "spark":
        out = "file://" + data
        ts._frame_with_id().write.mode("error").parquet(out)
        if ts.spine is None or ts.spine.frame is None:  # the Spark engine always keeps it
            raise SparkfsError(f"training set {ts!r}: the Spark join kept no numbered spine")
        ts.spine.frame.write.mode("error").parquet("file://" + spine_path)
    else:
        import pyarrow.parquet as pq

        os.makedirs(data)
        os.makedirs(spine_path)
        pq.write_table(ts._frame_with_id(), os.path.join(data, "part-0.parquet"))
        if ts.spine is None or ts.spine.arrow is None:  # the DuckDB engine always keeps it
            raise SparkfsError(f"training set {ts!r}: the DuckDB join kept no numbered spine")
        pq.write_table(ts.spine.arrow, os.path.join(spine_path, "part-0.parquet"))


def _spec(catalog: "Catalog", name: str, version: int | None = None) -> dict:
    spec = catalog.registry.get(KIND, name, version)
    if spec is None:
        known = sorted({s["name"] for s in catalog.registry.list(KIND)})
        what = f"training set {name!r}" + (f" version {version}" if version is not None else "")
        raise NotFoundError(f"{what} does not exist; known training sets: {known or 'none'}")
    return spec


def get_training_set(catalog: "Catalog", name: str, version: int | None = None, *,
                     spark: "SparkProvider | None" = None) -> TrainingSet:
    """A stored training set (its latest version unless ``version``): reads the stored
    Parquet rows lazily, with the manifest. ``spark`` is what its ``to_spark()`` uses
    (``to_arrow()`` / ``to_pandas()`` read the Parquet files without Spark).

    >>> import tempfile
    >>> from sparkfs import FeatureStore
    >>> get_training_set(FeatureStore({"data_dir": tempfile.mkdtemp()}).catalog, "nope")
    Traceback (most recent call last):
    ...
    sparkfs.errors.NotFoundError: training set 'nope' does not exist; known training sets: none
    """
    spec = _spec(catalog, name, version)
    if not os.path.isdir(spec["data_path"]):
        raise NotFoundError(
            f"training set {name!r} version {spec['version']} is registered but its data at "
            f"{spec['data_path']} is missing; recreate it with fs.recreate_training_set({name!r})")
    return TrainingSet(spark, manifest=spec["manifest"], path=spec["data_path"],
                       name=name, version=spec["version"])


def list_training_sets(catalog: "Catalog") -> list[dict]:
    """Every stored training set version's registry entry (name, version, manifest...).

    >>> import tempfile
    >>> from sparkfs import FeatureStore
    >>> list_training_sets(FeatureStore({"data_dir": tempfile.mkdtemp()}).catalog)
    []
    """
    return catalog.registry.list(KIND)


def recreate_training_set(catalog: "Catalog", offline: "OfflineStore", name: str,
                          version: int | None = None, *,
                          spark: "SparkProvider") -> TrainingSet:
    """Rebuild a stored training set from its manifest: the stored spine, each group at
    its recorded group version, Delta version and ttl, the same engine and options
    (``spark`` is called only when that engine is Spark).

    Refuses (``SparkfsError``) when the rebuilt spine's row count or hash differs from the
    recorded one or a group's definition or an on-demand transform changed since.

    >>> import tempfile
    >>> from sparkfs import FeatureStore
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> recreate_training_set(fs.catalog, fs.offline, "nope", 2, spark=lambda: fs.spark)
    Traceback (most recent call last):
    ...
    sparkfs.errors.NotFoundError: training set 'nope' version 2 does not exist; known training sets: none
    """  # noqa: E501 (doctest output)
    spec = _spec(catalog, name, version)
    m = spec["manifest"]
    for g in m["groups"]:
        current = catalog.get_group(g["name"], g["version"])
        if fingerprint(current.to_spec()) != g["definition_fingerprint"]:
            _check_same_structure(current, g)
    engine = m["engine"]
    spine_path = spec["spine_path"]
    if engine == "spark":
        spine = spark().read.parquet("file://" + spine_path)
    else:
        import pyarrow.parquet as pq

        spine = pq.read_table(spine_path).sort_by(SPINE_ID)
    opts = dict(m.get("options", {}))
    ts = build(catalog, offline, spark, spine, m["features"], m["timestamp_col"], engine=engine,
               as_known_at=m["as_known_at"], key_map=m.get("key_map") or None,
               delta_versions=delta_versions(m), ttls=ttls(m), keep_id=True, **opts)
    got, want = ts.manifest["spine"], m["spine"]
    # both: the hash is an XOR of row hashes, which a pair of equal rows leaves unchanged
    if got["rows"] != want["rows"] or got["hash"] != want["hash"]:
        raise SparkfsError(
            f"training set {name!r}: the stored spine no longer matches the recorded "
            f"{want['rows']} rows hashing to {want['hash']} (got {got['rows']} rows, "
            f"{got['hash']}); its files were changed")
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
