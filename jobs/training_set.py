"""Build, or rebuild, a reproducible training set as a batch job.

Runs under ``spark-submit`` (the Spark engine uses the submitted session: executors read
the Delta files and do the join) or plain ``python`` (``--engine duckdb`` needs no Spark):

    spark-submit jobs/training_set.py --config conf/cluster.yaml create flight_delays \\
        --spine /data/spine.parquet --features weather:temp,planes:seats \\
        --timestamp-col sched_dep_ts
    python jobs/training_set.py recreate flight_delays --output /tmp/rebuilt.parquet

The arguments are those of ``sparkfs training-set`` (create | show | recreate | list);
``--repo`` imports a feature repo first (needed for on-demand transforms; its directory
and the working directory are importable, as for ``sparkfs``). Exit code 0 on success, 2
on a sparkfs error (one line on stderr), 1 when a recreate differs. The work is
``sparkfs training-set``; this file only hands its arguments over.
"""

from __future__ import annotations

import sys

from sparkfs.jobs_common import run_subcommand


def main(argv: list[str] | None = None) -> int:
    return run_subcommand("training-set", argv)


if __name__ == "__main__":
    sys.exit(main())
