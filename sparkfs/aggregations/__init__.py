"""Declarative windowed aggregations, exact at any point in time, offline and online.

A feature group fed by raw events declares ``aggregations=[Aggregation(column, function,
windows, filter=None)]``; each (aggregation, window) is a feature named
``{column}_{function}_{window}`` (``dep_delay_mean_7d``).

Semantics (every engine: Spark, DuckDB, online)
-----------------------------------------------
The value at time ``t`` for window ``W`` aggregates the *kept* events of the key with
event time in ``(t - W, t]`` — an event exactly at ``t - W`` is out, one exactly at ``t``
is in. With ``as_known_at`` only events with ``_commit_time <= t`` count. An event is
kept when its value is not null and, if the aggregation has a ``filter`` column, the
filter is true. Every history row is one event (no de-duplication by event time).

* ``count``  number of kept events (non-null values); 0 for an empty window.
* ``sum``, ``mean``, ``min``, ``max``  as usual; null for an empty window. ``sum`` of an
  integer or boolean column is an exact 64-bit integer; ``mean`` is a double.
* ``stddev`` the *sample* standard deviation (``n - 1`` in the denominator, like Spark's
  and DuckDB's ``stddev``/``stddev_samp`` and pandas' default); null with fewer than 2
  events. Computed from shifted power sums (the shift is the history mean of the
  column), so the relative error is about 1e-16 x ((window mean - history mean) / std)^2.
* ``last``   the value of the kept event with the latest event time; ties go to the later
  ``_commit_time``, then to the larger value.

NaN is a value, not a missing one (the event is kept), ordered above every number as in
Spark and DuckDB: one NaN makes ``sum``, ``mean``, ``stddev`` and ``max`` NaN, ``min``
skips it unless the window holds only NaN. ``inf + -inf`` is NaN.

Offline algorithms
------------------
Two exact plans, written once as SQL over both dialects and tested against a brute force:

* the *sliding* plan (``sliding.py``): running prefix and suffix aggregates within
  window-aligned chunks (one shuffle for all windows; no ``as_known_at``). The Spark
  engine uses it whenever ``as_known_at`` is off.
* the *tiled* plan (``plan.py``, below): equi-joins of tiles and edge events. DuckDB
  always runs it (it is DuckDB's fastest), Spark runs it with ``as_known_at``.

The tiled plan:
Time is integer microseconds. Each window ``W`` is cut into ``m <= 24`` equal tiles of
length ``T = W / m``, and each tile into ``m2 <= 24`` sub-tiles of length ``T2 = T / m2``
(``tile_size``); tile ``k`` is the interval ``(kT, (k+1)T]``, so an event at ``e`` lies in
tile ``floor((e - 1) / T)`` (likewise for sub-tiles). For a spine time ``t`` in tile
``kt`` and sub-tile ``kt2``, the window ``(t - W, t]`` is exactly

    head edge:  the events of sub-tile ``kt2 - m*m2`` later than ``t - W``
    head part:  the whole sub-tiles after it, up to the end of tile ``kt - m``
    full:       tiles ``kt - m + 1 .. kt - 1``                    (m - 1 whole tiles)
    tail part:  the whole sub-tiles of tile ``kt`` before ``kt2``
    tail edge:  the events of sub-tile ``kt2`` up to ``t``
    (head part + tail part = m2 - 1 whole sub-tiles)

1. *Tiles and sub-tiles*: events are grouped by (key, tile) and (key, sub-tile) into
   mergeable partials: count, exact sum, shifted power sums, min, max, and the maximum
   (event time, commit time, value) for ``last``.
2. *Whole tiles*: the spine is reduced to its distinct (key, ``kt``) query points; each
   is expanded to its ``m - 1`` tile numbers and joined to the tiles by equality on
   (key, tile). Same for the ``m2 - 1`` sub-tiles of each distinct (key, ``kt2``). The
   cost depends on the number of distinct query points, not on the events per window.
3. *Edges*: each spine row joins the raw events of its two edge sub-tiles, by equality
   on (key, sub-tile), and keeps those inside ``(t - W, t]``: about ``2W / (m*m2)`` of
   events per row (2.5 minutes' worth for a 1-day window), never the whole window.
4. Per spine row the partials are merged into the final values. Spine rows with no
   event get count 0 and nulls. The shift pass over the history runs only when a
   ``stddev`` is requested.

Every join is an equi-join (hash or sort-merge in Spark): no range join and no window
function over the history. *As known at*: tiles (sub-tiles) are also split by commit
tile ``c`` (sub-tile ``c2``); whole tiles take only ``c < kt`` (sub-tiles ``c2 < kt2``),
certainly committed by ``t``; the events of those ranges committed during the spine
row's own tile (sub-tile) are checked one by one like the edges (a large batch committed
inside a window makes this step heavier for the spine rows of that tile). Late events
(old event time, new commit) are counted exactly in both modes: the history is read at
the pinned Delta version each time.

Online algorithm (``online.py``)
--------------------------------
``fs.materialize(group)`` rebuilds, for each key touched since the last run (including
keys that only received late events), the key's kept raw events within the longest
window before the materialization clock, and stores them online. A read computes each
window against the read clock. Freshness guarantee: *exact for all events committed by
the last materialization; windows expire at read time* (a window that emptied since the
last event reads count 0 / null without another materialization).

>>> from sparkfs.aggregations.plan import AggregationPlan, _demo_group
>>> AggregationPlan.build(_demo_group()).features
['dep_delay_mean_1d', 'dep_delay_count_1d']
"""

from __future__ import annotations

from .plan import MAX_TILES, AggregationPlan, tile_size

__all__ = ["MAX_TILES", "AggregationPlan", "tile_size"]
