"""Score a spine with a deployment on Spark, as a batch job.

    spark-submit jobs/score_batch.py --config conf/cluster.yaml delay \\
        --spine /data/flights_2013_12.parquet --timestamp-col sched_dep_ts \\
        --repo jobs/flights/features.py --output /data/scored.parquet

Point-in-time features for every spine row, the model on the executors, each prediction
logged once in the deployment's evaluation table (see ``sparkfs.inference.batch``). The
arguments are those of ``sparkfs score-batch``. Exit code 0 on success, 2 on a sparkfs
error (one line on stderr).
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # so `--repo jobs/flights/features.py` imports `jobs.flights`


def main(argv: list[str] | None = None) -> int:
    from sparkfs.jobs_common import run_subcommand

    return run_subcommand("score-batch", argv)

if __name__ == "__main__":
    sys.exit(main())
