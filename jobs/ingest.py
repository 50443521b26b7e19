"""Ingest a file into a feature group: ``spark-submit jobs/ingest.py`` or plain ``python``.

    spark-submit --master spark://host:7077 jobs/ingest.py \\
        --config conf/cluster.yaml --repo jobs/flights/features.py \\
        --group weather --input /data/weather.parquet --run-id weather-2013-01-01

Prints the ingest result as one JSON line. Exit code 2 with a one-line error when the
batch is refused (nothing is written then).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML config (default $SPARKFS_CONFIG)")
    parser.add_argument("--repo", required=True, help="feature repo .py file to apply/import")
    parser.add_argument("--group", required=True, help="feature group name (or name@version)")
    parser.add_argument("--input", required=True, help="Parquet file/directory, .csv or .json")
    parser.add_argument("--run-id", help="idempotency key: the same run id twice is a no-op")
    parser.add_argument("--materialize", action="store_true", help="push to the online store")
    args = parser.parse_args(argv)

    from sparkfs import FeatureStore, SparkfsError
    from sparkfs.jobs_common import read_input
    from sparkfs.repo import load_repo

    try:
        fs = FeatureStore.from_config(args.config)
        fs.apply(load_repo(args.repo))
        df = read_input(fs.spark, args.input)
        result = fs.ingest(args.group, df, run_id=args.run_id,
                           materialize=True if args.materialize else None)
    except SparkfsError as exc:
        print(f"ingest: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
