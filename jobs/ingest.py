"""Ingest a file into a feature group: ``spark-submit jobs/ingest.py`` or plain ``python``.

    spark-submit --master spark://host:7077 jobs/ingest.py \\
        --config conf/cluster.yaml --repo jobs/flights/features.py \\
        --group weather --input /data/weather.parquet --run-id weather-2013-01-01

Prints the ingest result as one JSON line. Exit code 2 with a one-line error when the
batch is refused (nothing is written then).

The work is ``sparkfs ingest`` (``sparkfs.cli.core``, through ``FeatureStore.ingest``);
this file only maps the job's flags onto it, so sparkfs must be installed where the
driver runs. Under ``spark-submit`` the submitted session is the one the store uses.
"""

from __future__ import annotations

import argparse
import sys

from sparkfs.cli import main as sparkfs_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", help="YAML config (default $SPARKFS_CONFIG)")
    parser.add_argument("--repo", required=True, help="feature repo .py file to apply/import")
    parser.add_argument("--group", required=True, help="feature group name (or name@version)")
    parser.add_argument("--input", required=True, help="Parquet file/directory, .csv or .json")
    parser.add_argument("--run-id", help="idempotency key: the same run id twice is a no-op")
    parser.add_argument("--materialize", action="store_true", help="push to the online store")
    args = parser.parse_args(argv)
    cli = ["--config", args.config] if args.config else []
    cli += ["ingest", args.group, args.input, "--repo", args.repo]
    cli += ["--run-id", args.run_id] if args.run_id else []
    cli += ["--materialize"] if args.materialize else []
    return sparkfs_main(cli)


if __name__ == "__main__":
    sys.exit(main())
