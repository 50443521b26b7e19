"""Declaring expectation suites: in Python next to the group, or in JSON under ``conf/``.

A suite is stored as plain JSON (the great-expectations 1.x suite layout: ``{"name": ...,
"expectations": [{"type": ..., "kwargs": {...}}]}``), so it survives the registry round
trip and defining one never imports great-expectations.

>>> suite = Expectations([
...     expect("column_values_to_not_be_null", column="tailnum"),
...     expect("column_values_to_be_between", column="distance", min_value=0),
... ], name="flight_facts")
>>> [e["type"] for e in suite]
['expect_column_values_to_not_be_null', 'expect_column_values_to_be_between']
>>> Expectations.from_spec(suite.to_spec()) == suite
True
>>> expect("values_are_nice", column="x")
Traceback (most recent call last):
...
sparkfs.errors.DefinitionError: expectation 'expect_values_are_nice' is not a great-expectations expectation type: write e.g. 'expect_column_values_to_not_be_null' (see sparkfs.validation.ROW_LEVEL for the types checked row by row)
"""  # noqa: E501 (doctest output)

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import DefinitionError

_TYPE_RE = re.compile(r"expect_[a-z0-9_]+\Z")

#: Expectation types sparkfs can also evaluate row by row (in Spark and in pandas), so a
#: ``quarantine`` group can divert exactly the rows that fail them. Other types (table-level
#: or aggregate ones, e.g. ``expect_table_row_count_to_be_between``) judge the batch as a
#: whole: when one fails, the batch is refused under either policy.
ROW_LEVEL = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_value_lengths_to_be_between",
    "expect_column_value_lengths_to_equal",
    "expect_column_values_to_be_unique",
)

#: great-expectations types known to exist; used only to catch typos early (an unknown but
#: well-formed name is still passed to great-expectations, which has the last word).
_KNOWN_PREFIXES = ("expect_column_", "expect_table_", "expect_compound_", "expect_multicolumn_",
                   "expect_select_column_", "expect_query_")


def expect(type: str, **kwargs: Any) -> dict:
    """One expectation as a plain dict; ``type`` may omit the ``expect_`` prefix.

    >>> expect("column_values_to_be_in_set", column="origin", value_set=["EWR", "JFK", "LGA"])
    {'type': 'expect_column_values_to_be_in_set', 'kwargs': {'column': 'origin', 'value_set': ['EWR', 'JFK', 'LGA']}}
    """  # noqa: E501 (doctest output)
    name = type if type.startswith("expect_") else f"expect_{type}"
    return _check_item({"type": name, "kwargs": dict(kwargs)}, 0)


class Expectations:
    """A named, ordered suite of expectations for one feature group.

    Items are dicts from ``expect(...)``, dicts in the great-expectations JSON layout, or
    great-expectations expectation objects (``gx.expectations.ExpectColumnValuesToNotBeNull(
    column="x")``), which are turned into their JSON configuration. Pass it as
    ``FeatureGroup(..., expectations=suite, validation="strict" | "quarantine")``.
    """

    def __init__(self, expectations: Sequence[Any] = (), name: str = "") -> None:
        if isinstance(expectations, (str, bytes, Mapping)):
            raise DefinitionError(
                "Expectations(...) takes a list of expectations; to load a suite from JSON use "
                "Expectations.from_json(path)")
        self.name = name or ""
        self.items = [_check_item(_as_item(e, i), i) for i, e in enumerate(expectations)]

    # -- persistence ------------------------------------------------------------------------
    def to_spec(self) -> dict:
        """The great-expectations suite JSON layout (what the registry stores)."""
        return {"name": self.name, "expectations": copy.deepcopy(self.items)}

    @classmethod
    def from_spec(cls, spec: Any) -> "Expectations":
        """Rebuild from ``to_spec`` output, a bare list of expectations, or a JSON string.

        >>> Expectations.from_spec('[{"type": "expect_column_values_to_not_be_null", '
        ...                        '"kwargs": {"column": "x"}}]').items[0]["kwargs"]
        {'column': 'x'}
        """
        if isinstance(spec, Expectations):
            return spec
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except ValueError as exc:
                raise DefinitionError(
                    f"expectations string is not JSON ({exc}); to load a file use "
                    "Expectations.from_json(path)") from None
        if isinstance(spec, Mapping):
            if "expectations" not in spec:
                raise DefinitionError(
                    "an expectation suite needs an 'expectations' list, got keys "
                    f"{sorted(spec)}")
            return cls(spec["expectations"], name=spec.get("name") or "")
        if isinstance(spec, (list, tuple)):
            return cls(spec)
        raise DefinitionError(f"cannot read an expectation suite from {spec!r}")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Expectations":
        """Load a suite saved as JSON (for example ``conf/expectations/flight_facts.json``;
        a great-expectations ``suite.to_json_dict()`` dump works as is)."""
        try:
            with open(path, encoding="utf-8") as fh:
                spec = json.load(fh)
        except FileNotFoundError:
            raise DefinitionError(f"expectation suite file {str(path)!r} does not exist") from None
        except ValueError as exc:
            raise DefinitionError(f"expectation suite file {str(path)!r} is not JSON: {exc}") from None
        suite = cls.from_spec(spec)
        if not suite.name:
            suite.name = os.path.splitext(os.path.basename(str(path)))[0]
        return suite

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_spec(), fh, indent=2, sort_keys=True)
            fh.write("\n")

    # -- views ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expectations) and self.to_spec() == other.to_spec()

    def __repr__(self) -> str:
        return f"Expectations(name={self.name!r}, {len(self.items)} expectation(s))"

    def labels(self) -> list[str]:
        """A readable, unique label per expectation, e.g. ``expect_column_values_to_be_between(distance)``.

        >>> Expectations([expect("column_values_to_not_be_null", column="a"),
        ...               expect("column_values_to_not_be_null", column="a", mostly=0.5)]).labels()
        ['expect_column_values_to_not_be_null(a)', 'expect_column_values_to_not_be_null(a)#2']
        """
        out: list[str] = []
        for item in self.items:
            kw = item["kwargs"]
            cols = kw.get("column") or kw.get("column_list") or kw.get("column_A")
            if isinstance(cols, (list, tuple)):
                cols = ",".join(map(str, cols))
            base = f"{item['type']}({cols})" if cols else item["type"]
            label, n = base, 1
            while label in out:
                n += 1
                label = f"{base}#{n}"
            out.append(label)
        return out


def as_suite(expectations: Any) -> Expectations:
    """The ``Expectations`` of a group's ``expectations`` attribute (object or registry spec)."""
    if expectations is None:
        return Expectations([])
    return Expectations.from_spec(expectations)


def _as_item(e: Any, i: int) -> Any:
    if isinstance(e, Mapping):
        return dict(e)
    config = getattr(e, "configuration", None)  # a great-expectations Expectation object
    if config is not None and hasattr(config, "to_json_dict"):
        d = config.to_json_dict()
        return {"type": d["type"], "kwargs": d.get("kwargs", {}), **(
            {"meta": d["meta"]} if d.get("meta") else {})}
    raise DefinitionError(
        f"expectation #{i + 1} ({e!r}) is neither a dict like expect('column_values_to_not_be_null', "
        "column='x') nor a great-expectations expectation object")


def _check_item(item: dict, i: int) -> dict:
    t = item.get("type") or item.get("expectation_type")  # the 0.x layout used expectation_type
    if not isinstance(t, str) or not _TYPE_RE.match(t) or not t.startswith(_KNOWN_PREFIXES):
        raise DefinitionError(
            f"expectation {t!r} is not a great-expectations expectation type: write e.g. "
            "'expect_column_values_to_not_be_null' (see sparkfs.validation.ROW_LEVEL for the "
            "types checked row by row)")
    kwargs = item.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise DefinitionError(f"expectation #{i + 1} ({t}): kwargs must be a mapping, got {kwargs!r}")
    kwargs = {k: v for k, v in kwargs.items() if k != "batch_id"}
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise DefinitionError(f"expectation #{i + 1} ({t}): kwargs must be JSON values ({exc})") from None
    out = {"type": t, "kwargs": kwargs}
    if item.get("meta"):
        out["meta"] = dict(item["meta"])
    return out
