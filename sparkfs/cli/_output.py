"""Output helpers shared by the command modules: Rich tables for people, plain JSON for
scripts (``--json``: stable keys, no markup, no colour).

>>> print_table(["GROUP", "VERSION"], [["weather", 1], ["planes", None]])
GROUP    VERSION
weather  1
planes   -
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def console() -> Any:
    """A Rich console on stdout. Piped or captured output gets no colour and no width
    limit, so tables are never wrapped for scripts."""
    from rich.console import Console

    out = sys.stdout
    terminal = out.isatty()
    return Console(file=out, highlight=False, soft_wrap=True, emoji=False, markup=False,
                   width=None if terminal else 100_000, color_system="auto" if terminal else None)


def cell(value: Any, limit: int = 60) -> str:
    """A table cell: ``-`` for missing values (None or NaN); long text shortened;
    control characters escaped so that user text cannot drive the terminal."""
    from ..discovery import printable

    if value is None or (isinstance(value, float) and value != value):
        return "-"
    text = printable(str(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]],
                title: str | None = None, limit: int = 60, indent: int = 0) -> None:
    """Print rows as a borderless Rich table with a header line (cells longer than
    ``limit`` characters are shortened), each line indented by ``indent`` spaces.

    >>> print_table(["A", "B"], [["x", 1.5]], indent=2)
      A  B
      x  1.5
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns, box=None if title is None else box.SIMPLE_HEAD, title=title,
                  show_edge=False, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for col in table.columns:
        col.no_wrap = True
    for r in rows:
        table.add_row(*(Text(cell(v, limit)) for v in r))
    con = console()
    with con.capture() as cap:
        con.print(table)
    pad = " " * indent
    sys.stdout.write("\n".join(pad + line.rstrip() for line in cap.get().splitlines()) + "\n")


def print_json(data: Any, indent: int | None = 2) -> None:
    """Print ``data`` as JSON (dates and other objects as strings)."""
    print(json.dumps(data, indent=indent, default=str))
