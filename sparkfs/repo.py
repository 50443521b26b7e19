"""Loading a feature repo: a Python file (or module) whose top-level objects are
definitions. ``sparkfs apply``, the jobs and the online service all load repos this way.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "repo.py")
>>> _ = open(path, "w").write('''
... from sparkfs import Entity, FeatureGroup, Field
... airport = Entity("airport", join_keys=["origin"])
... weather = FeatureGroup("weather", [airport], "time_hour", [Field("temp", "double")])
... ''')
>>> [type(o).__name__ for o in load_repo(path)]
['Entity', 'FeatureGroup']
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

from .definitions import Entity, FeatureGroup
from .errors import DefinitionError, NotFoundError


def import_repo(path_or_module: str) -> ModuleType:
    """Import a repo from a ``.py`` path (its directory and the project root are put on
    ``sys.path`` so it can import sibling modules) or from a dotted module name.

    A repo that fails to import (a syntax error, an exception at its top level, a missing
    module) is reported as one ``DefinitionError`` naming the repo and the cause.
    """
    try:
        return _import_repo(path_or_module)
    except (DefinitionError, NotFoundError):
        raise
    except Exception as exc:  # the user's code: any exception at import time
        where = _innermost_frame_in(exc, path_or_module)
        raise DefinitionError(
            f"feature repo {path_or_module!r} failed to import{where}: "
            f"{type(exc).__name__}: {exc}") from exc


def _innermost_frame_in(exc: BaseException, path_or_module: str) -> str:
    """`` (line N)`` of the repo file's innermost frame in the traceback, if any."""
    path = os.path.abspath(path_or_module) if path_or_module.endswith(".py") else None
    line = None
    if isinstance(exc, SyntaxError) and exc.filename and path and \
            os.path.abspath(exc.filename) == path:
        line = exc.lineno
    tb = exc.__traceback__
    while tb is not None:
        if path and os.path.abspath(tb.tb_frame.f_code.co_filename) == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" (line {line})" if line else ""


def _import_repo(path_or_module: str) -> ModuleType:
    if path_or_module.endswith(".py") or os.sep in path_or_module:
        path = os.path.abspath(path_or_module)
        if not os.path.isfile(path):
            raise NotFoundError(f"feature repo {path_or_module!r} does not exist")
        for d in (os.path.dirname(path), os.getcwd()):
            if d not in sys.path:
                sys.path.insert(0, d)
        module_name = _module_name_for(path)
        if module_name is not None:
            return importlib.import_module(module_name)
        spec = importlib.util.spec_from_file_location(
            "sparkfs_repo_" + os.path.splitext(os.path.basename(path))[0], path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[spec.name] = module  # type: ignore[union-attr]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module
    return importlib.import_module(path_or_module)


def _module_name_for(path: str) -> str | None:
    """``jobs/flights/features.py`` run from the project root -> ``jobs.flights.features``
    (so transforms defined in a package keep one module identity everywhere)."""
    rel = os.path.relpath(path, os.getcwd())
    if rel.startswith(".."):
        return None
    parts = os.path.splitext(rel)[0].split(os.sep)
    pkg = os.getcwd()
    for p in parts[:-1]:
        pkg = os.path.join(pkg, p)
        if not os.path.isfile(os.path.join(pkg, "__init__.py")):
            return None
    return ".".join(parts)


def definitions_in(module: ModuleType) -> list[Any]:
    """Entities, feature groups and on-demand transforms defined at the module's top level,
    entities first, in definition order."""
    objs = [v for k, v in vars(module).items() if not k.startswith("_")]
    entities = [o for o in objs if isinstance(o, Entity)]
    groups = [o for o in objs if isinstance(o, FeatureGroup)]
    others = [o for o in objs if getattr(o, "registry_kind", None) and not isinstance(o, type)]
    out, seen = [], set()
    for o in entities + groups + others:
        if id(o) not in seen:
            seen.add(id(o))
            out.append(o)
    return out


def load_repo(path_or_module: str) -> list[Any]:
    objs = definitions_in(import_repo(path_or_module))
    if not objs:
        raise DefinitionError(
            f"feature repo {path_or_module!r} defines no Entity, FeatureGroup or on-demand "
            "transform at its top level")
    return objs
