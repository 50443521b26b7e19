"""Feast 0.67 side of bench/online.py; runs inside the Feast venv (bench/peers.py).

Reads a JSON job on argv[1]: parquet paths per feature view, key count, batch sizes,
iterations; prints one JSON line with materialization rows/s and read latencies.
"""

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main():
    job = json.load(open(sys.argv[1]))
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    repo = tempfile.mkdtemp(prefix="feast-bench-")
    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        f.write(f"project: bench\nregistry: {repo}/registry.db\nprovider: local\n"
                f"online_store:\n  type: sqlite\n  path: {repo}/online.db\n"
                "entity_key_serialization_version: 3\n")
    ent = Entity(name="eid", join_keys=["eid"], value_type=ValueType.INT64)
    views = []
    for name, spec in job["views"].items():
        src = FileSource(name=f"{name}_src", path=spec["path"], timestamp_field="event_time")
        views.append(FeatureView(name=name, entities=[ent], ttl=timedelta(days=36500),
                                 schema=[Field(name=c, dtype=Float64) for c in spec["features"]],
                                 source=src, online=True))
    store = FeatureStore(repo_path=repo)
    store.apply([ent] + views)
    t = time.perf_counter()
    store.materialize(datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
    mat_s = time.perf_counter() - t
    out = {"feast_version": __import__("feast").__version__,
           "materialize_rows_per_s": round(job["rows"] / mat_s), "materialize_s": round(mat_s, 2),
           "reads": {}}
    n_keys = job["keys"]
    for case, refs in job["cases"].items():
        for batch, iters in job["batches"]:
            rows = [[{"eid": (i * 7919 + j) % n_keys} for j in range(batch)] for i in range(iters)]
            check = store.get_online_features(features=refs, entity_rows=rows[0]).to_dict()
            present = sum(v is not None for v in check[refs[0].split(":")[1]])
            times = []
            for r in rows:
                t = time.perf_counter()
                store.get_online_features(features=refs, entity_rows=r).to_dict()
                times.append((time.perf_counter() - t) * 1000)
            out["reads"][f"{case}/batch{batch}"] = {
                "p50_ms": round(statistics.median(times), 3), "p99_ms": round(pct(times, 0.99), 3),
                "present_first_request": present}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
