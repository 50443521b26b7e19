"""Feature statistics per Delta version (with an HTML report) and drift monitoring.

Reading stored statistics and rendering the report need no Spark; computing them does.

>>> from sparkfs.monitoring import Statistics, render_html
>>> s = Statistics(group="g", group_version=1, delta_version=1, rows=3, features={"x": {
...     "dtype": "double", "kind": "numeric", "count": 3, "nulls": 0,
...     "histogram": {"edges": [0.0, 1.0, 2.0], "counts": [1, 2]}}})
>>> render_html(s).count("class='card histogram'")
1
"""

from .drift import DriftReport, monitor, psi
from .html import render_html, write_html
from .stats import (
    Statistics,
    compute_statistics,
    describe_statistics,
    record_statistics,
    statistics,
    statistics_versions,
)

__all__ = [
    "DriftReport", "Statistics", "compute_statistics", "describe_statistics", "monitor", "psi",
    "record_statistics", "render_html", "statistics", "statistics_versions", "write_html",
]
