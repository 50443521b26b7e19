"""The bench scripts run as ``python bench/<name>.py``, which puts ``bench/`` first on
``sys.path``: a script named like a standard-library module shadows it for every library the
bench imports (``bench/statistics.py`` broke mlflow's ``from statistics import mean`` in the
soak bench)."""

import os
import sys

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def test_no_bench_script_shadows_a_standard_library_module():
    names = {f[:-3] for f in os.listdir(BENCH) if f.endswith(".py")}
    assert names and not names & set(sys.stdlib_module_names), names & set(sys.stdlib_module_names)
