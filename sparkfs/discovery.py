"""Finding features: ``fs.search("delay")`` over the names, descriptions, tags and owners
of registered feature groups and their features (and entities). Reads only the registry.

Every word of the query must appear (case-insensitive, as a substring) in one of an
object's searchable texts; a feature also inherits its group's tags and owner. Hits are
ranked: name matches first, then tags, descriptions, owners.

>>> import tempfile, os
>>> from sparkfs import Entity, Field, FeatureGroup
>>> from sparkfs.catalog import Catalog
>>> from sparkfs.registry import Registry
>>> catalog = Catalog(Registry(os.path.join(tempfile.mkdtemp(), "registry.db")))
>>> _ = catalog.apply([FeatureGroup("weather", [Entity("airport", ["origin"])], "time_hour",
...     [Field("wind_gust", "double", "Wind gust speed, mph")], tags={"source": "noaa"})])
>>> [h.name for h in search(catalog, "gust")]
['weather:wind_gust']
>>> [h.name for h in search(catalog, "noaa")]
['weather', 'weather:wind_gust']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import SparkfsError

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import Catalog

_WEIGHTS = {"name": 8, "tags": 4, "description": 2, "owner": 1}


@dataclass
class SearchHit:
    """One match: ``kind`` is ``feature_group``, ``feature`` or ``entity``; ``name`` is
    ``group`` or ``group:feature`` (a feature reference you can pass to reads)."""

    kind: str
    name: str
    version: int | None
    description: str
    owner: str = ""
    tags: dict = field(default_factory=dict)
    dtype: str = ""
    matched: list[str] = field(default_factory=list)
    score: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def printable(text: str) -> str:
    r"""``text`` safe for a terminal: control characters (escape sequences, newlines, ...)
    are shown escaped instead of being interpreted.

    >>> print(printable("Delay\x1b[2J, in minutes\n"))
    Delay\x1b[2J, in minutes\n
    """
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class SearchResults(list):
    """A list of ``SearchHit`` that prints as a table."""

    def __str__(self) -> str:
        if not self:
            return "no matches"
        rows = [("KIND", "NAME", "VERSION", "DTYPE", "MATCHED", "DESCRIPTION")]
        for h in self:
            rows.append((h.kind, h.name, "-" if h.version is None else str(h.version),
                         h.dtype or "-", ",".join(h.matched),
                         printable(h.description or "-")[:60]))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _texts(name: str, description: str, owner: str, tags: dict) -> dict[str, str]:
    return {"name": name.lower(), "description": (description or "").lower(),
            "owner": (owner or "").lower(),
            "tags": " ".join(f"{k}={v} {k} {v}" for k, v in (tags or {}).items()).lower()}


def _match(words: list[str], texts: dict[str, str]) -> tuple[int, list[str]]:
    score = 0
    matched: list[str] = []
    for w in words:
        where = [part for part, text in texts.items() if w in text]
        if not where:
            return 0, []
        score += max(_WEIGHTS[p] for p in where)
        matched.extend(p for p in where if p not in matched)
    return score, matched


def search(catalog: "Catalog", text: str, latest_only: bool = True) -> SearchResults:
    """Groups, features and entities of ``catalog`` matching every word of ``text`` (best
    first; see the module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise SparkfsError("search needs some text, for example fs.search('delay')")
    words = text.lower().split()
    hits: list[SearchHit] = []
    for g in catalog.list_groups(latest_only=latest_only):
        score, matched = _match(words, _texts(g.name, g.description, g.owner, g.tags))
        if score:
            hits.append(SearchHit("feature_group", g.name, g.version, g.description, g.owner,
                                  dict(g.tags), "", matched, score + 1))
        for f in g.features:
            tags = {**g.tags, **dict(f.tags)}
            score, matched = _match(words, _texts(f.name, f.description, g.owner, tags))
            if score:
                hits.append(SearchHit("feature", f"{g.name}:{f.name}", g.version, f.description,
                                      g.owner, tags, f.dtype, matched, score))
    for e in catalog.registry.list_entities():
        score, matched = _match(words, _texts(e.name, e.description, e.owner, dict(e.tags)))
        if score:
            hits.append(SearchHit("entity", e.name, None, e.description, e.owner, dict(e.tags),
                                  "", matched, score))
    order = {"feature_group": 0, "feature": 1, "entity": 2}
    hits.sort(key=lambda h: (-h.score, order[h.kind], h.name))
    return SearchResults(hits)
