"""The Jinja2 environment of the UI's templates (``sparkfs/ui/templates``), shared by the
web pages and the notebook cards. Autoescaping is on for every template: names,
descriptions, tags and report texts are escaped wherever they appear.

>>> environment().from_string("{{ x }}").render(x="<b>'")
'&lt;b&gt;&#39;'
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..monitoring.compare import DRIFT_COLUMNS, drift_table
from . import data
from .charts import histogram_spec, inline_bars, spec_json, values_spec

HERE = Path(__file__).parent
#: Where the online service (and ``sparkfs ui``) serves the pages.
PREFIX = "/ui"


@functools.lru_cache(maxsize=1)
def environment() -> Any:
    """The environment (built once): autoescape, missing keys as empty, the UI's filters."""
    from .._extras import require

    require("jinja2", extra="ui", what="the web UI and notebook cards")
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=True, undefined=jinja2.ChainableUndefined,
                             trim_blocks=True, lstrip_blocks=True)

    def missing(v: Any) -> Any:  # a statistic a feature does not have: shown as "-"
        return None if isinstance(v, jinja2.Undefined) else v

    env.filters["num"] = lambda v: data.number(missing(v))
    env.filters["pct"] = lambda v: data.percent(missing(v))
    env.filters["spec"] = spec_json
    env.filters["seg"] = lambda v: quote(str(v), safe="@:")
    env.filters["lineage"] = lambda v: f"{PREFIX}/lineage/{quote(str(v), safe='@:/')}"
    env.filters["drift_cells"] = drift_table
    env.filters["zip"] = lambda a, b: list(zip(a, b))
    env.globals.update(histogram_spec=histogram_spec, values_spec=values_spec,
                       inline_bars=inline_bars, root=PREFIX, drift_columns=DRIFT_COLUMNS)
    return env
