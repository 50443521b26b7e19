"""Run a streaming feature pipeline: ``spark-submit jobs/stream.py`` or plain ``python``.

    spark-submit --jars <spark-kafka jars> jobs/stream.py --config conf/cluster.yaml \\
        --repo jobs/flights/features.py --group carrier_delays --source kafka \\
        --bootstrap-servers broker:9092 --topic departures \\
        --checkpoint /chk/carrier_delays --trigger "5 seconds"

Every micro-batch is one ingest (exactly once across restarts from ``--checkpoint``) and,
unless ``--no-materialize``, an online catch-up. ``--group`` may be repeated: one source
feeds several groups (e.g. departures into ``carrier_delays`` and ``origin_delays``), one
query per group in this driver, each checkpointed in ``<checkpoint>/<group>``. SIGTERM (or
Ctrl-C) stops the streams after their current micro-batch. Run without ``spark-submit``,
the job puts Spark's Kafka connector (``sparkfs.jvm``'s ``spark-kafka`` bundle) on the
session itself. Prints the stream's final
status as one JSON line per query; exit code 2 with a one-line error when the stream failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML config (default $SPARKFS_CONFIG)")
    p.add_argument("--repo", required=True, help="feature repo .py file to apply/import")
    p.add_argument("--group", required=True, action="append",
                   help="feature group name (or name@version); repeat it to feed several groups "
                        "from one source (checkpoints in <checkpoint>/<group>)")
    p.add_argument("--source", required=True, choices=["kafka", "files", "delta"])
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (one per stream)")
    p.add_argument("--trigger", help="'5 seconds', 'available_now' or 'once' (default: continuous "
                   "micro-batches)")
    p.add_argument("--bootstrap-servers", help="kafka: host:port[,host:port]")
    p.add_argument("--topic", help="kafka: topic to read")
    p.add_argument("--starting-offsets", default="earliest",
                   help="kafka, new checkpoint only: earliest (default), latest or a JSON map")
    p.add_argument("--value-format", default="json", choices=["json", "avro", "avro-confluent"],
                   help="kafka: message values are JSON objects (default), Avro records, or "
                        "Avro records in the Confluent wire format (Schema-Registry serializers)")
    p.add_argument("--avro-schema", help="kafka, avro: file holding the Avro schema (JSON); "
                   "default: the group's (sparkfs.streaming.parse.avro_schema)")
    p.add_argument("--path", help="files: directory the files land in")
    p.add_argument("--format", default="json", help="files: json (lines), parquet or csv")
    p.add_argument("--uri", help="delta: table URI")
    p.add_argument("--change-feed", action="store_true", help="delta: read the change data feed")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="source option, e.g. maxOffsetsPerTrigger=1000 (repeatable)")
    p.add_argument("--no-materialize", action="store_true", help="do not update the online store")
    return p


def source_kwargs(args: argparse.Namespace) -> dict:
    """The ``fs.stream_source`` keyword arguments for the command line; names what is missing."""
    from sparkfs.errors import ConfigError

    options = {}
    for item in args.option:
        if "=" not in item:
            raise ConfigError(f"--option {item!r} is not KEY=VALUE")
        k, v = item.split("=", 1)
        options[k] = v
    need = {"kafka": ["bootstrap_servers", "topic"], "files": ["path"], "delta": ["uri"]}[args.source]
    missing = [f"--{n.replace('_', '-')}" for n in need if not getattr(args, n)]
    if missing:
        raise ConfigError(f"--source {args.source} needs {', '.join(missing)}")
    if args.source == "kafka":
        schema = None
        if args.avro_schema:
            if not args.value_format.startswith("avro"):
                raise ConfigError("--avro-schema needs --value-format avro or avro-confluent")
            try:
                with open(args.avro_schema) as f:
                    schema = f.read()
            except OSError as exc:
                raise ConfigError(f"--avro-schema {args.avro_schema!r} cannot be read "
                                  f"({exc.strerror})") from None
        return {"bootstrap_servers": args.bootstrap_servers, "topic": args.topic,
                "starting_offsets": args.starting_offsets, "options": options,
                "value_format": args.value_format, "avro_schema": schema}
    if args.source == "files":
        return {"path": args.path, "format": args.format, "options": options}
    return {"uri": args.uri, "change_feed": args.change_feed}


def _config(args: argparse.Namespace):
    from sparkfs import jvm
    from sparkfs.config import load_config
    from sparkfs.sparkutil import launched_by_spark_submit

    cfg = load_config(args.config)
    if args.source == "kafka" and not launched_by_spark_submit() \
            and "spark.jars" not in cfg.spark.conf and jvm.is_fetched("spark-kafka"):
        conf = dict(cfg.spark.conf)
        conf["spark.jars"] = ",".join(str(p) for p in jvm.jars("spark-kafka"))
        cfg = cfg.with_overrides(spark={**cfg.spark.model_dump(), "conf": conf})
    return cfg


def run(args: argparse.Namespace, stop: threading.Event) -> int:
    from sparkfs import FeatureStore
    from sparkfs.repo import load_repo
    from sparkfs.streaming import record_termination, stream_error

    fs = FeatureStore(_config(args))
    fs.apply(load_repo(args.repo))
    groups = list(dict.fromkeys(args.group))
    queries = []
    try:
        for group in groups:
            checkpoint = (args.checkpoint if len(groups) == 1
                          else os.path.join(args.checkpoint, group.replace("@", "_v")))
            df = fs.stream_source(group, args.source, **source_kwargs(args))
            queries.append(fs.ingest_stream(group, df, checkpoint=checkpoint,
                                            trigger=args.trigger,
                                            materialize=not args.no_materialize))
        while all(q.isActive for q in queries) and not stop.is_set():
            queries[0].awaitTermination(0.5)
    finally:
        # let the micro-batches in flight finish (their commits and online pushes), then stop
        deadline = time.monotonic() + 600
        for q in queries:
            while q.isActive and q.status.get("isTriggerActive") and time.monotonic() < deadline:
                time.sleep(0.1)
            q.stop()
            record_termination(fs.spark, q)
    failed = False
    for q in queries:
        error = stream_error(q)
        status = [s for s in fs.list_streams() if s.query_id == str(q.id)]
        print(json.dumps(status[0].to_dict() if status else {"query_id": str(q.id)},
                         default=str))
        if error:
            print(f"stream: error: {error}", file=sys.stderr)
            failed = True
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sparkfs import SparkfsError

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        return run(args, stop)
    except SparkfsError as exc:
        print(f"stream: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
