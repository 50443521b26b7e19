"""Materialize feature groups online: ``spark-submit jobs/materialize.py`` or plain ``python``.

    spark-submit --master spark://host:7077 jobs/materialize.py \\
        --config conf/cluster.yaml --repo jobs/flights/features.py --group weather

Applies the repo's definitions when ``--repo`` is given, then pushes every Delta commit
after each group's watermark to the online store (all online groups without ``--group``).
Prints one JSON line per group. Exit code 2 with a one-line error on failure; the
watermark is then unchanged and the next run picks the work up again.
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
    parser.add_argument("--repo", help="feature repo .py file to apply first")
    parser.add_argument("--group", action="append", help="group name or name@version "
                        "(repeatable; default: every online group)")
    parser.add_argument("--engine", choices=["spark", "local"], default="spark")
    args = parser.parse_args(argv)

    from sparkfs import FeatureStore, SparkfsError
    from sparkfs.online.materialize import materialize

    try:
        fs = FeatureStore.from_config(args.config)
        if args.repo:
            from sparkfs.repo import load_repo

            fs.apply(load_repo(args.repo))
        groups = ([fs.get_feature_group(g) for g in args.group] if args.group else
                  [g for g in fs.list_feature_groups(latest_only=True) if g.online])
        for g in groups:
            print(json.dumps(materialize(fs, g, engine=args.engine).to_dict()), flush=True)
        fs.close()
    except SparkfsError as exc:
        print(f"materialize: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
