"""Validation with great-expectations 1.x: suites declared next to a feature group (or
loaded from JSON), run on every ingest, with a ``strict`` or ``quarantine`` policy.

great-expectations is imported only when a batch is validated (it takes seconds), never by
defining a suite, reading a report or serving features.

>>> from sparkfs import Entity, Field, FeatureGroup
>>> flight = Entity("flight", join_keys=["flight_id"])
>>> g = FeatureGroup("flight_facts", [flight], "sched_dep_ts",
...     [Field("distance", "double"), Field("tailnum", "string")],
...     expectations=Expectations([expect("column_values_to_not_be_null", column="tailnum"),
...                                expect("column_values_to_be_between", column="distance",
...                                       min_value=0)]),
...     validation="quarantine")
>>> again = FeatureGroup.from_spec(g.to_spec())        # the registry round trip
>>> as_suite(again.expectations) == g.expectations
True
"""

from .quarantine import read_quarantine
from .reports import ValidationReport, latest_report, reports
from .run import FAILED_COLUMN, ValidationOutcome, record_validation, validate_batch
from .suite import ROW_LEVEL, Expectations, as_suite, expect

__all__ = [
    "FAILED_COLUMN", "ROW_LEVEL", "Expectations", "ValidationOutcome", "ValidationReport",
    "as_suite", "expect", "latest_report", "read_quarantine", "record_validation", "reports",
    "validate_batch",
]
