"""Validation reports: what each batch's expectations found, stored in the registry
(kind ``validation_report``, one numbered entry per validated batch), readable without
Spark or great-expectations.

>>> r = ValidationReport(group="flight_facts", group_version=1, run_id="r1", policy="quarantine",
...     status="quarantined", rows_input=10, rows_quarantined=2, engine="spark", results=[
...     {"label": "expect_column_values_to_be_between(distance)", "success": False,
...      "unexpected_count": 2, "row_level": True}])
>>> [x["label"] for x in r.failed]
['expect_column_values_to_be_between(distance)']
>>> ValidationReport.from_dict(r.to_dict()) == r
True
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..definitions import FeatureGroup
from ..errors import NotFoundError, RegistryError

if TYPE_CHECKING:  # pragma: no cover
    from ..catalog import Catalog

KIND = "validation_report"


@dataclass
class ValidationReport:
    """One batch's validation: the verdict per expectation and the row accounting.

    ``status`` is ``passed`` (every expectation held), ``quarantined`` (rows failing
    expectations were diverted to the quarantine table) or ``refused`` (nothing written).
    Each entry of ``results`` has ``label``, ``type``, ``kwargs``, ``success``,
    ``unexpected_count`` (rows breaking it; None for batch-level expectations),
    ``unexpected_percent``, ``observed_value`` and ``row_level``.
    """

    group: str
    group_version: int
    run_id: str
    policy: str
    status: str
    rows_input: int
    rows_quarantined: int = 0
    engine: str = "spark"
    suite: str = ""
    delta_version: int | None = None
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    results: list[dict] = field(default_factory=list)
    seq: int | None = None

    @property
    def success(self) -> bool:
        return all(r.get("success") for r in self.results)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.results if not r.get("success")]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ValidationReport":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def summary(self) -> str:
        """One line per failed expectation, e.g. for an error message."""
        parts = []
        for r in self.failed:
            n = r.get("unexpected_count")
            if n is None:
                parts.append(f"{r['label']} (observed {r.get('observed_value')!r})")
            else:
                parts.append(f"{r['label']}: {n} bad row(s)")
        return "; ".join(parts) or "all expectations passed"

    def _repr_html_(self) -> str:
        """The report as a notebook card (``sparkfs.ui.cards``)."""
        from ..ui.cards import validation_card

        return validation_card(self)

    def __str__(self) -> str:
        head = (f"validation of {self.group} v{self.group_version}, run {self.run_id!r} "
                f"({self.created_at[:19]}Z): {self.status.upper()}, policy={self.policy}, "
                f"engine={self.engine}")
        rows = (f"  rows: {self.rows_input} in, {self.rows_input - self.rows_quarantined} passed, "
                f"{self.rows_quarantined} quarantined"
                + (f"; Delta version {self.delta_version}" if self.delta_version is not None else
                   "; nothing written" if self.status == "refused" else ""))
        table = [("", "EXPECTATION", "BAD ROWS", "BAD %", "OBSERVED")]
        for r in self.results:
            n = r.get("unexpected_count")
            pct = r.get("unexpected_percent")
            table.append(("ok" if r.get("success") else "FAIL", r["label"],
                          "-" if n is None else str(n),
                          "-" if pct is None else f"{pct:.2f}",
                          "-" if r.get("observed_value") is None else str(r["observed_value"])[:30]))
        widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
        lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip() for t in table]
        return "\n".join([head, rows, *lines])


def _name(group: FeatureGroup) -> str:
    return group.table_name


def store_report(catalog: "Catalog", report: ValidationReport) -> ValidationReport:
    """Append ``report`` to the group's report log in the registry (the next sequence
    number)."""
    registry = catalog.registry
    name = f"{report.group}__v{report.group_version}"
    for _ in range(20):  # another process may take the same number: take the next one
        seq = max(registry.versions(KIND, name), default=0) + 1
        report.seq = seq
        try:
            registry.put(KIND, name, seq, report.to_dict(), replace=False)
            return report
        except RegistryError:
            continue
    raise RegistryError(f"could not store the validation report of {name!r}: too much contention")


def reports(catalog: "Catalog", group: FeatureGroup) -> list[ValidationReport]:
    """Every stored report of ``group``, oldest first.

    >>> import tempfile
    >>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> reports(fs.catalog, g)
    []
    """
    return [ValidationReport.from_dict(s) for s in
            sorted(catalog.registry.list(KIND), key=lambda s: s.get("seq") or 0)
            if s.get("group") == group.name and s.get("group_version") == group.version]


def report_of_commit(catalog: "Catalog", group: FeatureGroup, delta_version: int,
                     run_id: str) -> ValidationReport | None:
    """The stored report of the batch run ``run_id`` committed as ``delta_version``, or
    None (a replay's report names the version it found its rows in, under its own run
    id). Reports are searched newest first and the search stops at a report of an older
    version (a report stored out of order by a concurrent writer is not found: None).

    >>> import tempfile
    >>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> _ = store_report(fs.catalog, ValidationReport(group="w", group_version=1, run_id="r1",
    ...     policy="strict", status="passed", rows_input=3, delta_version=4))
    >>> report_of_commit(fs.catalog, g, 4, "r1").status, report_of_commit(fs.catalog, g, 4, "r2")
    ('passed', None)
    """
    registry = catalog.registry
    name = _name(group)
    for seq in sorted(registry.versions(KIND, name), reverse=True):
        spec = registry.get(KIND, name, seq)
        if spec is None or spec.get("delta_version") is None:
            continue
        if spec["delta_version"] == delta_version and spec.get("run_id") == run_id:
            return ValidationReport.from_dict(spec)
        if spec["delta_version"] < delta_version:
            return None
    return None


def latest_report(catalog: "Catalog", group: FeatureGroup) -> ValidationReport:
    """The report of the group's most recently validated batch.

    >>> import tempfile
    >>> from sparkfs import Entity, FeatureGroup, FeatureStore, Field
    >>> fs = FeatureStore({"data_dir": tempfile.mkdtemp()})
    >>> g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")])
    >>> latest_report(fs.catalog, g)
    Traceback (most recent call last):
    ...
    sparkfs.errors.NotFoundError: feature group 'w' v1 has no validation report: it declares no expectations
    """  # noqa: E501 (doctest output)
    spec = catalog.registry.get(KIND, _name(group))
    if spec is None:
        why = ("it declares no expectations" if group.expectations is None
               else "no batch has been ingested since its expectations were declared")
        raise NotFoundError(f"feature group {group.name!r} v{group.version} has no validation "
                            f"report: {why}")
    return ValidationReport.from_dict(spec)
