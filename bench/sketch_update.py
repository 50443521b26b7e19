"""Benchmark: the CPU of the one-pass statistics against the CPU of the Parquet write.

The write tasks of an ingest (``sparkfs.offline.onepass.stage_partition``) feed every Arrow
batch Spark hands them into ``sparkfs.monitoring.sketches.Partial.update`` while they write
the same batches as Parquet. This measures both in one process, without Spark, on the same
Arrow table: ``--rows`` rows of one string join key, an event time and ``--features``
features, cut into batches of ``--batch-rows`` rows (Spark's
``spark.sql.execution.arrow.maxRecordsPerBatch``, 10000 by default), and

* ``update_cpu_s``: CPU seconds of ``Partial.update`` over every batch (the per-task cost);
* ``finish_cpu_s``: serializing the partial, merging it on the "driver" and ``finish``;
* ``parquet_cpu_s``: CPU seconds of writing the same batches with ``pyarrow.parquet`` and
  the write tasks' settings (snappy, 1M-row row groups, 256 KiB dictionary pages);
* ``ratio``: ``update_cpu_s / parquet_cpu_s``;
* ``hash_cpu_s``: the row hashes a write task of the fused ingest computes on the same
  batches (``sparkfs.offline.rowhash``: the features' two value hashes, as against stored
  rows, and the hash of the key and event time), and ``hash_ratio`` against the write.

Variants: ``double`` (uniform doubles in [0, 1), like ``bench/ingest.py``) and ``mixed``
(doubles with nulls, NaNs and +-inf, longs of few distinct values, strings of few values,
timestamps). Each is timed ``--repeat`` times and the fastest run is reported (CPU time,
``time.process_time``, so the other processes on a shared machine disturb it little; the
load average is printed alongside). Prints one JSON document. Not a test: run
``python bench/sketch_update.py --rows 200000`` for a quick look.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1000000)")
    p.add_argument("--features", type=int, default=10, help="features per row (default 10)")
    p.add_argument("--batch-rows", type=int, default=10_000,
                   help="rows per Arrow batch (default 10000, Spark's default)")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (fastest kept)")
    p.add_argument("--variants", default="double,mixed",
                   help="comma-separated variants: double, mixed (default both)")
    p.add_argument("--seed", type=int, default=17)
    return p.parse_args(argv)


def make_table(rows: int, n_features: int, variant: str, seed: int):
    """The benchmark rows and the (name, dtype) specs of their features."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ids = np.arange(rows)
    cols: dict = {
        "key": pa.array(np.char.add("k", (ids % 10_000).astype(str))),
        "ts": pa.array((1_356_998_400 + ids) * 1_000_000, pa.timestamp("us")),
    }
    specs = []
    for i in range(n_features):
        name = f"f{i}"
        kind = "double" if variant == "double" else ("double", "long", "string", "timestamp")[i % 4]
        if kind == "double":
            v = rng.random(rows)
            mask = None
            if variant == "mixed":
                v[rng.random(rows) < 0.01] = np.nan
                v[rng.random(rows) < 0.001] = np.inf
                v[rng.random(rows) < 0.001] = -np.inf
                mask = rng.random(rows) < 0.05
            cols[name] = pa.array(v, pa.float64(), mask=mask)
        elif kind == "long":
            cols[name] = pa.array(rng.integers(0, 1000, rows), pa.int64(),
                                  mask=rng.random(rows) < 0.05)
        elif kind == "string":
            words = np.array([f"w{j}" for j in range(20)])
            cols[name] = pa.array(words[rng.integers(0, 20, rows)], pa.string(),
                                  mask=rng.random(rows) < 0.05)
        else:
            cols[name] = pa.array((1_356_998_400 + rng.integers(0, 86_400 * 365, rows))
                                  * 1_000_000, pa.timestamp("us"))
        specs.append((name, kind))
    return pa.table(cols), specs


def cpu(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def bench_variant(args, variant: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sparkfs.monitoring.sketches import Partial
    from sparkfs.offline.onepass import DICTIONARY_PAGE_BYTES, ROW_GROUP_ROWS
    from sparkfs.offline.rowhash import row_hash, row_hashes

    table, specs = make_table(args.rows, args.features, variant, args.seed)
    batches = table.to_batches(max_chunksize=args.batch_rows)
    holder: dict = {}

    def update() -> None:
        p = Partial.empty(specs)
        for b in batches:
            p.update(b)
        holder["p"] = p

    def finish() -> None:
        blob = holder["p"].to_bytes()
        holder["stats"] = Partial.merged(specs, [blob]).finish()

    features = [name for name, _ in specs]

    def hashes() -> None:
        for b in batches:
            row_hashes(b, features)
            row_hash(b, ["key", "ts"], 1)

    with tempfile.TemporaryDirectory(prefix="sparkfs-bench-stats-") as tmp:
        path = os.path.join(tmp, "part.parquet")

        def write() -> None:
            with pq.ParquetWriter(path, table.schema, compression="snappy",
                                  coerce_timestamps="us",
                                  dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES) as w:
                buffer: list = []
                buffered = 0
                for b in batches:  # buffered into row groups like the write tasks
                    buffer.append(b)
                    buffered += b.num_rows
                    if buffered >= ROW_GROUP_ROWS:
                        w.write_table(pa.Table.from_batches(buffer, schema=table.schema),
                                      row_group_size=ROW_GROUP_ROWS)
                        buffer, buffered = [], 0
                if buffer:
                    w.write_table(pa.Table.from_batches(buffer, schema=table.schema),
                                  row_group_size=ROW_GROUP_ROWS)

        parquet = cpu(write, args.repeat)
        upd = cpu(update, args.repeat)
    hashed = cpu(hashes, args.repeat)
    fin = cpu(finish, args.repeat)
    return {"rows": args.rows, "features": args.features,
            "dtypes": sorted({d for _, d in specs}), "batches": len(batches),
            "update_cpu_s": round(upd, 3), "finish_cpu_s": round(fin, 3),
            "parquet_cpu_s": round(parquet, 3), "ratio": round(upd / parquet, 2),
            "update_us_per_value": round(1e6 * upd / (args.rows * args.features), 3),
            "hash_cpu_s": round(hashed, 3), "hash_ratio": round(hashed / parquet, 2)}


def _git_head() -> str | None:
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _uptime() -> str | None:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None) -> int:
    args = parse_args(argv)
    from importlib.metadata import version

    import numpy
    import pyarrow

    out: dict = {
        "benchmark": "statistics", "commit": _git_head(),
        "python": platform.python_version(), "pyarrow": pyarrow.__version__,
        "numpy": numpy.__version__,
        "datasketches": version("datasketches"),
        "cpus": os.cpu_count(), "batch_rows": args.batch_rows, "repeat": args.repeat,
        "uptime_before": _uptime(),
        "variants": {},
    }
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if variant not in ("double", "mixed"):
            raise SystemExit(f"unknown variant {variant!r} (double, mixed)")
        out["variants"][variant] = bench_variant(args, variant)
    out["uptime_after"] = _uptime()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
