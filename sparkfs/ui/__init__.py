"""The sparkfs web UI: read-only pages over the registry, the Delta logs and the stored
statistics and reports, served at ``/ui`` by the online service (``sparkfs serve``) and on
its own by ``sparkfs ui --port 8000``.

Pages are rendered on the server with Jinja2 (autoescaping on: every name, description and
tag is escaped); charts are Vega-Lite specs drawn in the browser by vega-embed as SVG. The
JavaScript (vega, vega-lite, vega-embed, with their licenses) and the CSS ship inside the
package (``sparkfs/ui/static``): the UI makes no request beyond the server it came from.
Pages need no Spark, except the group drift page: its numbers are ``fs.monitor``'s (what
``sparkfs monitor`` prints), computed from the rows in Spark; without pyspark it says so.

Routes (all ``GET``): ``/ui`` (overview), ``/ui/search?q=``, ``/ui/groups``,
``/ui/groups/{name}[@{version}]``, ``/ui/groups/{name}[@{version}]/drift?a=&b=``,
``/ui/features/{group}[@{version}]:{feature}``, ``/ui/views``, ``/ui/views/{name}``,
``/ui/training-sets``, ``/ui/training-sets/{name}[@{version}]``, ``/ui/models``,
``/ui/deployments``, ``/ui/deployments/{name}`` (with training set vs served traffic drift),
``/ui/lineage/{node}?direction=&depth=`` (node ids as ``fs.lineage`` takes them). Unknown
names give a 404 page naming what does not exist.

>>> import tempfile
>>> from fastapi.testclient import TestClient
>>> from sparkfs import FeatureStore
>>> from sparkfs.ui import create_ui_app
>>> client = TestClient(create_ui_app(FeatureStore({"data_dir": tempfile.mkdtemp()})))
>>> client.get("/ui").status_code
200
>>> r = client.get("/ui/groups/nope")
>>> r.status_code, "nope" in r.text
(404, True)
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_ui_app", "mount_ui"]


def __getattr__(name: str) -> Any:
    """The app builders load FastAPI only when used: ``sparkfs.ui.cards`` (notebook cards)
    needs Jinja2 alone."""
    if name in __all__:
        from . import routes

        return getattr(routes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
