"""`make demo`: the flights feature store end to end on the embedded default.

Each section is a module ``jobs/flights/demo_<area>.py`` with ``run(fs, ctx)``; they run
in order on one FeatureStore and share results through ``ctx``. The demo starts from an
empty data directory (``$SPARKFS_DATA_DIR``, default ``.sparkfs/demo``) every time.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

SECTIONS = [
    "demo_foundation",
    "demo_online",
    "demo_serving",
    "demo_aggregations",
    "demo_training",
    "demo_quality",
    "demo_inference",
    "demo_governance",
    "demo_streaming",
    "demo_ui",
]


def main() -> int:
    os.chdir(ROOT)
    data_dir = os.environ.setdefault("SPARKFS_DATA_DIR", os.path.join(".sparkfs", "demo"))
    shutil.rmtree(data_dir, ignore_errors=True)
    from sparkfs import FeatureStore

    fs = FeatureStore.from_config("conf/local.yaml")
    ctx: dict = {"data_dir": data_dir}
    started = time.perf_counter()
    try:
        for name in SECTIONS:
            module = importlib.import_module(f"jobs.flights.{name}")
            title = (module.__doc__ or name).strip().splitlines()[0]
            print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))
            module.run(fs, ctx)
    finally:
        fs.close()
    print(f"\ndemo finished in {time.perf_counter() - started:.1f}s; data in {data_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
