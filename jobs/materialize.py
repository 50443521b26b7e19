"""Materialize feature groups online: ``spark-submit jobs/materialize.py`` or plain ``python``.

    spark-submit --master spark://host:7077 jobs/materialize.py \\
        --config conf/cluster.yaml --repo jobs/flights/features.py --group weather

Applies the repo's definitions when ``--repo`` is given, then pushes every Delta commit
after each group's watermark to the online store (all online groups without ``--group``).
Prints one JSON line per group. Exit code 2 with a one-line error on failure; the
watermark is then unchanged and the next run picks the work up again.

The work is ``sparkfs materialize`` (``sparkfs.cli.online``, through
``FeatureStore.materialize``); this file only maps the job's flags onto it, so sparkfs
must be installed where the driver runs.
"""

from __future__ import annotations

import argparse
import sys

from sparkfs.cli import main as sparkfs_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", help="YAML config (default $SPARKFS_CONFIG)")
    parser.add_argument("--repo", help="feature repo .py file to apply first")
    parser.add_argument("--group", action="append", default=[],
                        help="group name or name@version (repeatable; default: every online "
                        "group)")
    parser.add_argument("--engine", choices=["spark", "local"], default="spark")
    args = parser.parse_args(argv)
    cli = ["--config", args.config] if args.config else []
    cli += ["materialize", *args.group, "--engine", args.engine]
    cli += ["--repo", args.repo] if args.repo else []
    return sparkfs_main(cli)


if __name__ == "__main__":
    sys.exit(main())
