"""The one rule for names and values that reach SQL text, in DuckDB's and Spark's dialects.

Every identifier sparkfs puts into a SQL string — spine columns (keys, the timestamp
column, labels), ``key_map`` targets, feature and key names — goes through
``quote_ident``; every string value through ``sql_literal``. Quoting, not refusing: a
valid-but-odd column name (``a"b``, ``it's``, a space, a newline, unicode) is a column
like any other and must work. Escaping follows each dialect's own rule:

* DuckDB (and SQLite, PostgreSQL: standard SQL): ``"name"`` with ``"`` doubled; string
  literals ``'text'`` with ``'`` doubled.
* Spark SQL: ``` `name` ``` with ````` doubled (also what ``pyspark.sql.functions.col``
  parses); string literals ``'text'`` with ``\\`` and ``'`` escaped by a backslash (Spark
  treats the backslash as an escape character in literals).

The only names refused are those no engine can hold: not a string, empty, or holding a
NUL character (``SparkfsError`` naming what the name was for).

>>> quote_ident('a"b')
'"a""b"'
>>> quote_ident("a`b", "spark")
'`a``b`'
>>> sql_literal("it's")
"'it''s'"
>>> print(sql_literal("it's", "spark"))
'it\\'s'
>>> import duckdb
>>> name = 'x" FROM (SELECT 1); --'
>>> duckdb.sql(f"SELECT 1 AS {quote_ident(name)}").columns == [name]
True
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import SparkfsError

DIALECTS = ("duckdb", "spark")


def check_ident(name: object, what: str = "column name") -> str:
    """``name`` if some engine can hold it as an identifier, else ``SparkfsError``.

    >>> check_ident("has space")
    'has space'
    >>> check_ident("", "spine column")
    Traceback (most recent call last):
    ...
    sparkfs.errors.SparkfsError: spine column '' is empty; give the column a name
    """
    if not isinstance(name, str):
        raise SparkfsError(f"{what} must be a string, got {type(name).__name__} {name!r}")
    if not name:
        raise SparkfsError(f"{what} {name!r} is empty; give the column a name")
    if "\x00" in name:
        raise SparkfsError(f"{what} {name!r} contains a NUL character, which no SQL engine "
                           "accepts in a name; rename the column")
    return name


def quote_ident(name: str, dialect: str = "duckdb") -> str:
    """``name`` as one quoted SQL identifier of ``dialect`` (``"duckdb"`` or ``"spark"``),
    its quote character escaped by doubling: it can never end the identifier early.

    >>> quote_ident("ts"), quote_ident("ts", "spark")
    ('"ts"', '`ts`')
    """
    check_ident(name)
    if dialect == "duckdb":
        return '"' + name.replace('"', '""') + '"'
    if dialect == "spark":
        return "`" + name.replace("`", "``") + "`"
    raise SparkfsError(f"unknown SQL dialect {dialect!r}; use one of {', '.join(DIALECTS)}")


def quote_idents(names: Iterable[str], dialect: str = "duckdb") -> str:
    """Comma-separated quoted identifiers.

    >>> print(quote_idents(["a", "b c"], "spark"))
    `a`, `b c`
    """
    return ", ".join(quote_ident(n, dialect) for n in names)


def sql_literal(value: str, dialect: str = "duckdb") -> str:
    """``value`` as a SQL string literal of ``dialect``.

    >>> sql_literal("/data/x.parquet")
    "'/data/x.parquet'"
    """
    if not isinstance(value, str):
        raise SparkfsError(f"a SQL string literal must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise SparkfsError(f"string {value!r} contains a NUL character; SQL cannot hold it")
    if dialect == "duckdb":
        return "'" + value.replace("'", "''") + "'"
    if dialect == "spark":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise SparkfsError(f"unknown SQL dialect {dialect!r}; use one of {', '.join(DIALECTS)}")


__all__ = ["quote_ident", "quote_idents", "sql_literal", "check_ident", "DIALECTS"]
