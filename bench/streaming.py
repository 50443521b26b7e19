"""Streaming benchmark: sustained events/s from a real Kafka broker into Delta + the online
store (SQLite) with 10 features through ``fs.ingest_stream``, side by side with the floor —
a hand-written ``foreachBatch`` that parses the same JSON and only appends each batch to a
Delta table (delta-rs) — and the freshness distribution (event appended to Kafka -> value
readable by ``get_online_features``) at a fraction of the sustained rate.

    python bench/streaming.py --events 6000 --per-trigger 2000 --freshness-s 15

Prints one JSON object, with ``goal_*_met`` for the goals of issue 18: throughput >= 0.7x
the floor; freshness p99 <= trigger interval + 1 s (every event seen). Absolute numbers
depend on the host: compare within one run. The online store is SQLite; ``--hbase`` adds a
column for a real single-node HBase (its Thrift server, started from the Maven-fetched
bundle): the same stream into a second store whose online store is that HBase.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FEATURES = [f"f{i}" for i in range(10)]


def message(i: int, keys: int) -> str:
    row = {"id": i % keys, "ts": _ts(i)}
    row.update({f: (i * (j + 1)) % 997 / 7.0 for j, f in enumerate(FEATURES)})
    return json.dumps(row)


def _ts(i: int) -> str:
    import datetime as dt

    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=i)
    return t.isoformat().replace("+00:00", "Z")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--keys", type=int, default=1_000)
    ap.add_argument("--per-trigger", type=int, default=5_000)
    ap.add_argument("--freshness-s", type=float, default=20.0,
                    help="how long the live stream is fed (at half the sustained rate)")
    ap.add_argument("--probes-per-s", type=float, default=10.0,
                    help="events per second whose online arrival is timed (each a new key)")
    ap.add_argument("--trigger-s", type=float, default=1.0)
    ap.add_argument("--hbase", action="store_true",
                    help="also stream into a store whose online store is a real HBase")
    args = ap.parse_args()

    from deltalake import write_deltalake
    from pyspark.sql import functions as F

    from sparkfs import Entity, FeatureGroup, FeatureStore, Field, jvm
    from sparkfs.config import SparkConfig
    from sparkfs.sparkutil import get_or_create_spark
    from sparkfs.streaming import parse
    from sparkfs.testing.kafka import KafkaBroker

    spark = get_or_create_spark(SparkConfig(master="local[2]", app_name="bench-streaming", conf={
        "spark.sql.shuffle.partitions": "2",
        "spark.jars": ",".join(str(p) for p in jvm.jars("spark-kafka"))}))
    group = FeatureGroup("bench_stream", [Entity("thing", join_keys=["id"], dtypes={"id": "long"})],
                         "ts", [Field(f, "double") for f in FEATURES], online=True)
    work = tempfile.mkdtemp(prefix="sparkfs-bench-stream-")
    atexit.register(shutil.rmtree, work, True)  # removed however the run ends
    fs = FeatureStore({"project": "bench", "data_dir": work, "ingest": {"statistics": False}},
                      spark=spark)
    fs.apply([group])
    out: dict = {**_revision(), "events": args.events, "features": len(FEATURES),
                 "keys": args.keys, "max_offsets_per_trigger": args.per_trigger}
    with KafkaBroker() as kafka:
        kafka.create_topic("bench", partitions=2)
        kafka.produce("bench", [message(i, args.keys) for i in range(args.events)],
                      keys=[str(i % args.keys) for i in range(args.events)])
        opts = {"maxOffsetsPerTrigger": str(args.per_trigger)}

        # the floor: parse + append to Delta, nothing else
        floor_path = os.path.join(work, "floor")

        floor_fn_s: dict = {}

        def append(batch, batch_id):
            started = time.perf_counter()
            write_deltalake(floor_path, batch.toArrow(), mode="append")
            floor_fn_s[batch_id] = {"function": time.perf_counter() - started}

        raw = (spark.readStream.format("kafka")
               .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
               .option("subscribe", "bench").option("startingOffsets", "earliest")
               .options(**opts).load())
        value = F.from_json(F.col("value").cast("string"), parse.input_schema(group))
        parsed = raw.select(value.alias("r")).select("r.*")
        t0 = time.perf_counter()
        floor_q = (parsed.writeStream.foreachBatch(append)
                   .option("checkpointLocation", os.path.join(work, "ck-floor"))
                   .trigger(availableNow=True).start())
        floor_q.awaitTermination()
        floor_s = time.perf_counter() - t0
        out["floor_batch_ms"] = _spark_phases(floor_q, floor_fn_s)

        df = fs.stream_source(group, "kafka", bootstrap_servers=kafka.bootstrap_servers, topic="bench",
                              options=opts)
        t0 = time.perf_counter()
        q = fs.ingest_stream(group, df, checkpoint=os.path.join(work, "ck"),
                             trigger="available_now")
        q.awaitTermination()
        sparkfs_s = time.perf_counter() - t0
        out["sparkfs_batch_ms"] = _spark_phases(q, _batch_phases(fs, q))
        assert fs.read_history(group.name).to_arrow().num_rows == args.events
        out["floor_events_per_s"] = round(args.events / floor_s, 1)
        out["sparkfs_events_per_s"] = round(args.events / sparkfs_s, 1)
        out["ratio_vs_floor"] = round(floor_s / sparkfs_s, 3)
        if args.hbase:
            out.update(_hbase_column(spark, group, kafka, opts, work, args.events, floor_s))

        # freshness: a live stream fed at half the sustained rate, probes polled online
        out.update(_freshness(fs, group, kafka, work, args, rate=0.5 * args.events / sparkfs_s))
        out["trigger_s"] = args.trigger_s
        # the goals, judged within this run (absolute numbers depend on the host's load)
        out["goal_throughput_ratio_min"] = 0.7
        out["goal_throughput_met"] = out["ratio_vs_floor"] >= 0.7
        out["goal_freshness_p99_max_s"] = args.trigger_s + 1.0
        out["goal_freshness_met"] = out["freshness_seen"] == out["freshness_probes"] > 0 \
            and out["freshness_p99_s"] <= args.trigger_s + 1.0
    fs.close()
    print(json.dumps(out))


def _revision() -> dict:
    """The commit and branch the benchmark ran on."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", here, *a], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"commit": git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else ""),
            "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


#: Spark's own phases of a micro-batch (``StreamingQueryProgress.durationMs``): latestOffset
#: (ask Kafka for the newest offsets), walCommit (write the offset log), addBatch (the
#: batch function), commitOffsets (write the commit log), triggerExecution (all of it).
SPARK_PHASES = ("latestOffset", "walCommit", "addBatch", "commitOffsets", "triggerExecution")


def _spark_phases(query, inside: dict | None = None) -> dict:
    """Mean milliseconds per micro-batch that read rows: Spark's phases and, with
    ``inside`` (batch id -> the batch function's own phases, from the run log), those of
    the same batches; ``in_bookkeeping`` is what addBatch spent outside them (run-log
    record, status file, and what Spark spends around the Python function: the floor's
    ``in_bookkeeping`` is that last part alone, its ``in_function`` timed by the bench)."""
    done = [p for p in query.recentProgress if p.numInputRows > 0]
    if inside is not None:
        done = [p for p in done if p.batchId in inside]
    out: dict = {"batches": len(done)}

    def mean(values: list) -> float | None:
        return round(sum(values) / len(values), 1) if values else None

    for name in SPARK_PHASES:
        out[name] = mean([p.durationMs.get(name, 0) for p in done])
    if inside is not None and done:
        phases = [inside[p.batchId] for p in done]
        for name in sorted({k for ph in phases for k in ph}):
            out[f"in_{name}"] = mean([1000 * ph.get(name, 0.0) for ph in phases])
        out["in_bookkeeping"] = mean([p.durationMs.get("addBatch", 0) - 1000 * sum(ph.values())
                                      for p, ph in zip(done, phases)])
    return out


def _batch_phases(fs, query) -> dict:
    """Batch id -> seconds per phase, for the stream's recorded micro-batches with rows."""
    [status] = [s for s in fs.list_streams() if s.query_id == str(query.id)]
    return {b.batch_id: b.phases_s for b in fs.stream_batches(status.stream_id) if b.rows_input}


def _freshness(fs, group, kafka, work: str, args, rate: float) -> dict:
    """Feed a live stream (trigger ``--trigger-s``) at ``rate`` events/s (half the sustained
    rate) for ``--freshness-s`` seconds; ``--probes-per-s`` of those events carry a new key,
    and the time from just before the probe is produced to the end of the first
    ``get_online_features`` poll that shows its value is its freshness (polled every 20 ms;
    the clock stops after the poll returns, so the numbers err on the slow side). Event
    times are the wall clock, as a live source's are."""
    import datetime as dt

    from confluent_kafka import Producer

    kafka.create_topic("fresh", partitions=1)
    live = fs.stream_source(group, "kafka", bootstrap_servers=kafka.bootstrap_servers, topic="fresh")
    q = fs.ingest_stream(group, live, checkpoint=os.path.join(work, "ck-fresh"),
                         trigger=f"{args.trigger_s} seconds")
    started = time.monotonic()  # measure from a running query, not from its start-up
    while q.lastProgress is None and time.monotonic() - started < 300:
        time.sleep(0.2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 0})
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    lock = threading.Lock()
    done = threading.Event()

    def poll() -> None:
        while True:
            with lock:
                pending = sorted(set(sent) - set(seen))
            if pending:
                got = fs.get_online_features([f"{group.name}:f0"],
                                             [{"id": k} for k in pending]).to_dict()["f0"]
                now = time.perf_counter()
                with lock:
                    seen.update({k: now for k, v in zip(pending, got) if v is not None})
            elif done.is_set():
                return
            if done.is_set() and time.perf_counter() > deadline[0]:
                return
            time.sleep(0.02)

    deadline = [float("inf")]
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    tick, n, probe_every = 0.05, 0, max(1, round(rate / args.probes_per_s))
    base, t_start = 10_000_000, time.perf_counter()
    while time.perf_counter() - t_start < args.freshness_s:
        due = int((time.perf_counter() - t_start) * rate) + 1
        while n < due:
            now_ts = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
            probe = n % probe_every == 0
            key = base + n if probe else n % args.keys
            row = {"id": key, "ts": now_ts, **{f: float(n % 997) for f in FEATURES}}
            t = time.perf_counter()
            producer.produce("fresh", value=json.dumps(row))
            if probe:
                with lock:
                    sent[key] = t
            n += 1
        producer.poll(0)
        time.sleep(tick)
    producer.flush(30)
    fed_s = time.perf_counter() - t_start
    deadline[0] = time.perf_counter() + 60
    done.set()
    poller.join(90)
    q.stop()
    phases = _spark_phases(q, _batch_phases(fs, q))
    del producer  # before the broker stops, so that librdkafka does not retry at exit
    lat = sorted(seen[k] - sent[k] for k in seen)
    out = {"freshness_target_rate_events_per_s": round(rate, 1),
           "freshness_fed_events_per_s": round(n / fed_s, 1), "freshness_events": n,
           "freshness_probes": len(sent), "freshness_seen": len(lat), "freshness_batch_ms": phases}
    if lat:
        out["freshness_p50_s"] = round(lat[len(lat) // 2], 3)
        out["freshness_p99_s"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3)
    return out


def _hbase_column(spark, group, kafka, opts: dict, work: str, events: int,
                  floor_s: float) -> dict:
    """The same stream into a store whose online store is a real HBase (Thrift)."""
    from sparkfs import FeatureStore
    from sparkfs.testing.hbase_server import RealHBase

    with RealHBase(workdir=os.path.join(work, "hbase")) as hbase:
        fs = FeatureStore({"project": "bench", "data_dir": os.path.join(work, "with-hbase"),
                           "ingest": {"statistics": False}, "online": hbase.online_config()},
                          spark=spark)
        try:
            fs.apply([group])
            df = fs.stream_source(group, "kafka", bootstrap_servers=kafka.bootstrap_servers,
                                  topic="bench", options=opts)
            t0 = time.perf_counter()
            fs.ingest_stream(group, df, checkpoint=os.path.join(work, "ck-hbase"),
                             trigger="available_now").awaitTermination()
            took = time.perf_counter() - t0
            assert fs.read_history(group.name).to_arrow().num_rows == events
            probe = fs.get_online_features([f"{group.name}:f0"], [{"id": 0}]).to_dict()["f0"]
            assert probe[0] is not None, "HBase holds no online value after the stream"
        finally:
            fs.close()
    return {"hbase_events_per_s": round(events / took, 1),
            "hbase_ratio_vs_floor": round(floor_s / took, 3)}


if __name__ == "__main__":
    main()
