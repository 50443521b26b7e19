"""``@transform``: one pandas function, run three ways — Spark pandas UDF, pandas, one row.

A transform is a plain pandas function (one ``pd.Series`` per parameter in; a Series
out, or a DataFrame out for several outputs) plus declared output dtype(s). The
decorated object stays callable on pandas and adds:

- ``t.spark(*columns)``: a Spark Column backed by a ``pandas_udf`` (Arrow), for
  ``withColumn``/``select`` in feature pipelines and backfills;
- ``t(series_or_frame)``: the pandas call (outputs coerced to the declared dtypes);
- ``t.row(**values)``: Python value(s) for one row, by calling the *same* function on a
  one-row frame;
- ``t.fingerprint``: a hash of the function's source, its declaration and its
  dependencies (transforms and same-module functions it calls, and ``deps=``).

All three paths feed the function the same pandas dtypes (see ``pandas_dtype``):
timestamps are ``datetime64[ns, UTC]``, ints are nullable ``Int32``/``Int64``, strings
are ``object`` with ``None`` for missing. NaN and null are the same missing value.

>>> import pandas as pd
>>> @transform(output="double")
... def spread(temp: pd.Series, dewp: pd.Series) -> pd.Series:
...     return temp - dewp
>>> spread(pd.DataFrame({"temp": [50.0, 60.0], "dewp": [40.0, None]})).tolist()
[10.0, nan]
>>> spread.row(temp=50.0, dewp=41.5)
8.5
>>> spread.row(temp=50.0, dewp=None) is None
True
>>> [f.name for f in spread.outputs], len(spread.fingerprint)
(['spread'], 16)

Importing this module does not import pyspark.
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .definitions import FeatureRef, Field, check_dtype, check_name
from .dtypes import spark_type
from .errors import DefinitionError, TransformError
from .transform_dtypes import (
    _is_missing,
    coerce,
    pandas_dtype,
    series_from_values,
    spark_like_series,
    to_python,
    to_values,
)

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame


__all__ = ["Transform", "transform", "pandas_dtype",
           "coerce", "to_python"]

# -- the transform object -------------------------------------------------------------------
class Transform:
    """A pandas function with declared outputs; see the module docstring.

    Build with ``@transform``. ``inputs`` are the function's parameter names (each one a
    column of the same name); ``input_dtypes`` the declared dtypes of some of them;
    ``features`` (on-demand only) maps parameters to looked-up ``"group:feature"``s.
    """

    def __init__(self, func: Callable, outputs: Sequence[Field], *, name: str | None = None,
                 multi: bool = False, input_dtypes: Mapping[str, str] | None = None,
                 features: Mapping[str, str] | None = None, on_demand: bool = False,
                 deps: Sequence[Any] = (), description: str = "") -> None:
        self.func = func
        self.name = check_name(name or func.__name__, "transform")
        self.outputs = tuple(outputs)
        self.multi = multi
        self.on_demand = bool(on_demand)
        self.description = description or (inspect.getdoc(func) or "").split("\n")[0]
        self.version = 0
        self.deps = tuple(deps)
        params = inspect.signature(func).parameters.values()
        for p in params:
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                raise DefinitionError(
                    f"transform {self.name!r}: parameter {p.name!r} is *args/**kwargs; declare "
                    "one named parameter per input column")
        self.inputs = tuple(check_name(p.name, f"input of transform {self.name!r}") for p in params)
        if not self.inputs:
            raise DefinitionError(f"transform {self.name!r} has no inputs: give the function "
                                  "one parameter per input column")
        self.input_dtypes = {k: check_dtype(v, f"input {k!r} of transform {self.name!r}")
                             for k, v in dict(input_dtypes or {}).items()}
        self.features = {k: str(FeatureRef.parse(v)) for k, v in dict(features or {}).items()}
        for k in list(self.input_dtypes) + list(self.features):
            if k not in self.inputs:
                raise DefinitionError(f"transform {self.name!r} declares {k!r}, which is not a "
                                      f"parameter of {func.__name__}{inspect.signature(func)}")
        if self.features and not self.on_demand:
            raise DefinitionError(f"transform {self.name!r} looks up features {self.features}; "
                                  "only on-demand transforms can: use @transform(..., on_demand=True)")
        names = [f.name for f in self.outputs]
        if not names or len(set(names)) != len(names):
            raise DefinitionError(f"transform {self.name!r} needs distinct outputs, got {names}")
        self.fingerprint = _fingerprint(self)
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    # registry protocol: on-demand transforms are applied with fs.apply([t])
    @property
    def registry_kind(self) -> str | None:
        return "on_demand" if self.on_demand else None

    @property
    def source(self) -> str:
        return f"{self.func.__module__}:{self.func.__qualname__}"

    @property
    def output_names(self) -> list[str]:
        return [f.name for f in self.outputs]

    def to_spec(self) -> dict:
        """JSON-able description (``TransformRef`` keys plus on-demand details)."""
        spec: dict[str, Any] = {"name": self.name, "inputs": list(self.inputs),
                "outputs": [f.to_spec() for f in self.outputs],
                "fingerprint": self.fingerprint, "source": self.source,
                "mode": "on_demand" if self.on_demand else "batch"}
        if self.on_demand:  # registered on its own; groups keep exactly the TransformRef keys
            spec.update(input_dtypes=dict(self.input_dtypes), features=dict(self.features),
                        description=self.description)
        return spec

    def __repr__(self) -> str:
        return (f"Transform(name={self.name!r}, inputs={list(self.inputs)}, "
                f"outputs={self.output_names}, fingerprint={self.fingerprint!r})")

    # -- pandas ----------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> pd.Series | pd.DataFrame:
        """Run on pandas: Series per input (positional or by name), or one DataFrame that
        has every input column. Returns a Series (one output) or a DataFrame."""
        if len(args) == 1 and not kwargs and isinstance(args[0], pd.DataFrame):
            frame = args[0]
            missing = [c for c in self.inputs if c not in frame.columns]
            if missing:
                raise TransformError(f"transform {self.name!r} needs column(s) {missing}; the "
                                     f"frame has {list(frame.columns)}")
            columns = {c: frame[c] for c in self.inputs}
        else:
            try:
                bound = inspect.signature(self.func).bind(*args, **kwargs)
            except TypeError as exc:
                raise TransformError(f"transform {self.name!r}: {exc}; pass one Series per "
                                     f"input {list(self.inputs)} or one DataFrame") from None
            columns = {k: v if isinstance(v, pd.Series) else pd.Series(v)
                       for k, v in bound.arguments.items()}
        return self.run_pandas(columns)

    def run_pandas(self, columns: Mapping[str, pd.Series], dtypes: Mapping[str, str] | None = None,
                   tz: str = "UTC") -> pd.Series | pd.DataFrame:
        """Coerce inputs, call the function once, check and coerce outputs: a Series (one
        output) or a DataFrame. ``dtypes`` types inputs the transform does not declare."""
        out = self.run_columns(columns, dtypes, tz)
        if self.multi:
            return pd.DataFrame(out)
        return out[self.outputs[0].name]

    def run_columns(self, columns: Mapping[str, pd.Series],
                    dtypes: Mapping[str, str] | None = None,
                    tz: str = "UTC") -> dict[str, pd.Series]:
        """The core of every path: ``{output name: Series}`` (no DataFrame is built)."""
        args, n = self._inputs(columns, dtypes, tz)
        return self._outputs(self._call(args, n), n, self._one)

    def _inputs(self, columns: Mapping[str, pd.Series], dtypes: Mapping[str, str] | None,
                tz: str = "UTC") -> tuple[dict[str, pd.Series], int]:
        n = None
        args = {}
        for name in self.inputs:
            s = columns[name]
            if n is None:
                n = len(s)
            elif len(s) != n:
                raise TransformError(f"transform {self.name!r}: inputs have different lengths")
            dtype = self.input_dtypes.get(name) or (dtypes or {}).get(name)
            if not isinstance(s.index, pd.RangeIndex) or s.index.start != 0:
                s = s.reset_index(drop=True)
            args[name] = coerce(s, dtype,
                                f"transform {self.name!r} input {name!r}", tz)
        return args, n or 0

    def run_values(self, values: Mapping[str, Sequence[Any]],
                   dtypes: Mapping[str, str] | None = None) -> dict[str, list]:
        """The online path: equally long Python lists in (missing: None), ``{output name:
        list of Python values}`` out (missing -> None). Same inputs, single call and checks
        as ``run_columns``, with fewer pandas objects in between.

        >>> @transform(output="double")
        ... def half(x):
        ...     return x / 2
        >>> half.run_values({"x": [3.0, None]})
        {'half': [1.5, None]}
        """
        n = None
        args = {}
        for name in self.inputs:
            v = values[name]
            if n is None:
                n = len(v)
            elif len(v) != n:
                raise TransformError(f"transform {self.name!r}: inputs have different lengths")
            dtype = self.input_dtypes.get(name) or (dtypes or {}).get(name)
            args[name] = series_from_values(v, dtype, f"transform {self.name!r} input {name!r}")
        return self._outputs(self._call(args, n or 0), n or 0, self._one_values)

    def _call(self, args: dict[str, pd.Series], n: int) -> Any:
        try:
            return self.func(**args)
        except TransformError:
            raise
        except Exception as exc:
            untyped = [k for k, v in args.items() if v.dtype == object and k not in
                       self.input_dtypes and len(v) and v.isna().all()]
            hint = (f"; input(s) {untyped} held only missing values and no dtype (Spark would "
                    "not know one either): declare it with @transform(inputs={...})"
                    if untyped else "")
            raise TransformError(f"transform {self.name!r} ({self.source}) failed on {n} row(s): "
                                 f"{type(exc).__name__}: {exc}{hint}") from exc

    def _outputs(self, result: Any, n: int, one: Callable) -> dict[str, Any]:
        if self.multi:
            if not isinstance(result, pd.DataFrame):
                raise TransformError(f"transform {self.name!r} declares outputs "
                                     f"{self.output_names} and must return a DataFrame with those "
                                     f"columns, got {type(result).__name__}")
            missing = [c for c in self.output_names if c not in result.columns]
            if missing:
                raise TransformError(f"transform {self.name!r} returned no column(s) {missing}; "
                                     f"it returned {list(result.columns)}")
            return {f.name: one(result[f.name], f, n) for f in self.outputs}
        if isinstance(result, pd.DataFrame) and len(result.columns) == 1:
            result = result.iloc[:, 0]
        if not isinstance(result, (pd.Series, np.ndarray, pd.api.extensions.ExtensionArray)):
            raise TransformError(f"transform {self.name!r} must return a pandas Series of "
                                 f"{n} value(s), got {type(result).__name__}")
        if not isinstance(result, pd.Series):
            result = pd.Series(result)
        f = self.outputs[0]
        out = one(result, f, n)
        return {f.name: out.rename(f.name) if isinstance(out, pd.Series) else out}

    def _checked(self, s: pd.Series, f: Field, n: int) -> pd.Series:
        if len(s) != n:
            raise TransformError(f"transform {self.name!r} returned {len(s)} value(s) for "
                                 f"output {f.name!r} from {n} input row(s)")
        if not isinstance(s.index, pd.RangeIndex) or s.index.start != 0:
            s = s.reset_index(drop=True)
        return s

    def _one(self, s: pd.Series, f: Field, n: int) -> pd.Series:
        return coerce(self._checked(s, f, n), f.dtype,
                      f"transform {self.name!r} output {f.name!r}")

    def _one_values(self, s: pd.Series, f: Field, n: int) -> list:
        return to_values(self._checked(s, f, n), f.dtype,
                         f"transform {self.name!r} output {f.name!r}")

    # -- one row ---------------------------------------------------------------------------
    def row(self, **values: Any) -> Any:
        """Run the same function on one row: a Python value (or a dict for several outputs).

        Missing values (None, NaN, NaT) come back as None.
        """
        return self.row_from(values)

    def row_from(self, values: Mapping[str, Any], dtypes: Mapping[str, str] | None = None) -> Any:
        """``row`` taking a mapping; ``dtypes`` types inputs the transform leaves undeclared."""
        missing = [c for c in self.inputs if c not in values]
        extra = [c for c in values if c not in self.inputs]
        if missing or extra:
            raise TransformError(f"transform {self.name!r}.row() needs exactly {list(self.inputs)}"
                                 f"; missing {missing}, unexpected {extra}")
        cols = {}
        for k in self.inputs:
            v = values[k]
            if isinstance(v, (list, tuple, np.ndarray)):
                cols[k] = pd.Series([v], dtype=object)
            elif not (self.input_dtypes.get(k) or (dtypes or {}).get(k)):
                cols[k] = spark_like_series([v])  # undeclared: the dtype Spark would give
            elif _is_missing(v):
                cols[k] = pd.Series([None], dtype=object)
            else:
                cols[k] = pd.Series([v])
        args, n = self._inputs(cols, dtypes)
        out = self._outputs(self._call(args, n), n, self._one_values)
        if self.multi:
            return {f.name: out[f.name][0] for f in self.outputs}
        return out[self.outputs[0].name][0]

    # -- Spark -----------------------------------------------------------------------------
    def spark(self, *columns: "str | Column", dtypes: Mapping[str, str] | None = None) -> "Column":
        """A Spark Column computing this transform with a pandas UDF over ``columns`` (names
        or Columns, one per input; default: the columns named like the inputs). Several
        outputs come back as one struct column (see ``with_columns``)."""
        from pyspark.sql import SparkSession
        from pyspark.sql import functions as F

        if not columns:
            columns = self.inputs
        if len(columns) != len(self.inputs):
            raise TransformError(f"transform {self.name!r} takes {len(self.inputs)} column(s) "
                                 f"{list(self.inputs)}, got {len(columns)}")
        session = SparkSession.getActiveSession()
        tz = session.conf.get("spark.sql.session.timeZone") if session is not None else "UTC"
        udf = _spark_udf(self, dict(dtypes or {}), tz or "UTC")
        cols = [F.col(c) if isinstance(c, str) else c for c in columns]
        return udf(*cols)

    def spark_type(self) -> str:
        """The Spark DDL type of ``t.spark(...)``'s result."""
        if self.multi:
            return "struct<" + ", ".join(f"`{f.name}`: {spark_type(f.dtype)}"
                                         for f in self.outputs) + ">"
        return spark_type(self.outputs[0].dtype)

    def with_columns(self, df: "DataFrame", *columns: "str | Column",
                     dtypes: Mapping[str, str] | None = None) -> "DataFrame":
        """``df`` with every output of this transform added as a column (replacing any
        column of the same name)."""
        from pyspark.sql import functions as F

        col = self.spark(*columns, dtypes=dtypes)
        if not self.multi:
            return df.withColumn(self.outputs[0].name, col)
        tmp = f"__sparkfs_{self.name}"
        df = df.withColumn(tmp, col)
        for f in self.outputs:
            df = df.withColumn(f.name, F.col(tmp).getField(f.name))
        return df.drop(tmp)


_PICKLE_LOCK = threading.Lock()


def _spark_udf(t: Transform, dtypes: dict, tz: str):
    """The pandas UDF; the transform travels by value, so executors need not import the
    user's module."""
    from pyspark import cloudpickle
    from pyspark.sql.functions import pandas_udf

    payload = _dumps_by_value(cloudpickle, t)
    names = t.inputs
    cache: dict = {}

    def run(*cols: pd.Series) -> pd.Series:
        tr = cache.get("t")
        if tr is None:
            tr = cache["t"] = cloudpickle.loads(payload)
        return tr.run_pandas(dict(zip(names, cols)), dtypes, tz)

    def run_multi(*cols: pd.Series) -> pd.DataFrame:
        return run(*cols)

    fn = run_multi if t.multi else run
    fn.__name__ = fn.__qualname__ = t.name
    # pyspark's overloads want a PandasUDFType or typed pd.Series hints; the str return type works
    return pandas_udf(fn, t.spark_type())  # type: ignore[call-overload]


def _dumps_by_value(cloudpickle: Any, t: Transform) -> bytes:
    import sys

    modules = {m for m in (getattr(o, "__module__", None) for o in [t.func, *t.deps])
               if m and m != "__main__" and m in sys.modules and not m.startswith("sparkfs.")}
    with _PICKLE_LOCK:
        added = []
        for m in modules:
            try:
                cloudpickle.register_pickle_by_value(sys.modules[m])
                added.append(m)
            except ValueError:  # already registered
                pass
        try:
            return cloudpickle.dumps(t)
        finally:
            for m in added:
                cloudpickle.unregister_pickle_by_value(sys.modules[m])


# -- fingerprints ---------------------------------------------------------------------------
def _source_of(func: Callable) -> str:
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):  # defined in a REPL/exec: fall back to the code object
        code = func.__code__
        return repr((code.co_code, code.co_consts, code.co_names))


def _fingerprint(t: Transform) -> str:
    """sha256 over the source, the declaration, and every dependency's source/fingerprint."""
    parts = [t.name, repr([f.to_spec() for f in t.outputs]), repr(sorted(t.input_dtypes.items())),
             repr(sorted(t.features.items())), str(t.on_demand)]
    seen: set[int] = set()

    def visit(fn: Any) -> None:
        if isinstance(fn, Transform):
            parts.append("transform:" + fn.fingerprint)
            return
        if not inspect.isfunction(fn) or id(fn) in seen:
            return
        seen.add(id(fn))
        parts.append(_source_of(fn))
        for n in sorted(set(fn.__code__.co_names)):
            g = fn.__globals__.get(n)
            if isinstance(g, Transform) or (inspect.isfunction(g)
                                            and g.__module__ == fn.__module__):
                visit(g)

    visit(t.func)
    for d in t.deps:
        if not (isinstance(d, Transform) or callable(d)):
            raise DefinitionError(f"transform {t.name!r}: deps must be functions or transforms, "
                                  f"got {d!r}")
        visit(getattr(d, "func", d) if not isinstance(d, Transform) else d)
    return hashlib.sha256("\n\x00".join(parts).encode()).hexdigest()[:16]


# -- the decorator ----------------------------------------------------------------------------
def transform(func: Callable | None = None, *, output: str | Field | None = None,
              outputs: Mapping[str, str] | Sequence[Field] | None = None,
              name: str | None = None, inputs: Mapping[str, str] | None = None,
              features: Mapping[str, str] | None = None, on_demand: bool = False,
              deps: Iterable[Any] = (), description: str = "") -> Any:
    """Declare a pandas function as a transform.

    ``output``: the dtype (or a ``Field``) of a single output named after the function
    (or ``name``). ``outputs``: ``{name: dtype}`` or ``[Field, ...]`` for a function
    returning a DataFrame. ``inputs``: ``{parameter: dtype}`` for inputs whose dtype the
    call site does not give (request data). ``on_demand=True`` makes a request-time
    transform (register with ``fs.apply([t])``, reference as ``"name:output"``);
    ``features={parameter: "group:feature"}`` are then looked up before it runs.
    ``deps``: further functions/transforms whose code the fingerprint covers.

    >>> @transform(outputs={"lo": "long", "hi": "long"})
    ... def bounds(x):
    ...     return pd.DataFrame({"lo": x // 10 * 10, "hi": x // 10 * 10 + 9})
    >>> bounds.row(x=42)
    {'lo': 40, 'hi': 49}
    >>> transform(lambda x: x)
    Traceback (most recent call last):
    ...
    sparkfs.errors.DefinitionError: transform ... declares no output dtype: use @transform(output="double") or @transform(outputs={"a": "long", ...})
    """  # noqa: E501 (doctest output)
    def wrap(fn: Callable) -> Transform:
        if isinstance(fn, Transform):
            raise DefinitionError(f"{fn.name!r} is already a transform")
        if not callable(fn):
            raise DefinitionError(f"@transform decorates a function, got {fn!r}")
        tname = name or getattr(fn, "__name__", "")
        if output is None and outputs is None:
            raise DefinitionError(
                f"transform {tname!r} declares no output dtype: use @transform(output=\"double\") "
                "or @transform(outputs={\"a\": \"long\", ...})")
        if output is not None and outputs is not None:
            raise DefinitionError(f"transform {tname!r}: give output= or outputs=, not both")
        if tname == "<lambda>" and output is not None and not isinstance(output, Field):
            raise DefinitionError("a lambda needs @transform(name=...) or output=Field(...)")
        if output is not None:
            fields = [output if isinstance(output, Field) else Field(check_name(tname, "transform"),
                                                                       output)]
            multi = False
        elif isinstance(outputs, Mapping):
            fields, multi = [Field(k, v) for k, v in outputs.items()], True
        else:
            fields, multi = list(outputs or []), True
            if not all(isinstance(f, Field) for f in fields):
                raise DefinitionError(f"transform {tname!r}: outputs must be Field(...) objects "
                                      "or a {name: dtype} mapping")
        return Transform(fn, fields, name=tname, multi=multi, input_dtypes=inputs,
                         features=features, on_demand=on_demand, deps=list(deps),
                         description=description)

    return wrap(func) if func is not None else wrap

