"""Progress of long work (ingest, materialize, training sets, batch scoring, backfills).

One seam between the API and whoever shows progress. The API opens a task and advances
it; the current *reporter* decides what that looks like. By default the reporter does
nothing (library use stays silent and costs one context-variable lookup); the ``sparkfs``
command installs :func:`for_stderr`'s choice: :class:`RichReporter` (bars with counts,
rates, elapsed time and ETA) when stderr is a terminal, else :class:`PlainReporter` (plain
lines: counts, rows, elapsed, ETA; a line every few seconds and one when a task is done);
a notebook front end can install its own with :func:`use`.

>>> from sparkfs import progress
>>> with progress.task("ingest weather", total=3, unit="files") as t:
...     t.advance(2)
...     t.advance()
>>> t.completed, t.total
(3, 3)

Where Spark runs the work, :func:`spark_task` feeds a task from
``SparkContext.statusTracker()``: a thread polls the stages that started since the task
began and reports completed/total Spark tasks. It never starts Spark and never imports
pyspark itself (it looks for an already active ``SparkContext``), so the online path and
the DuckDB engines stay Spark-free. :func:`tracked` wraps a method in such a task; it is
how the ``FeatureStore`` facade reports (one decorator line per long operation).

Invariants: a reporter never raises into the work it reports on (a failing display is a
display problem); ``completed`` never decreases and never exceeds ``total`` once known; a
task that fails prints no "done" line (the command's one-line error says what happened).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["Task", "Reporter", "RichReporter", "PlainReporter", "for_stderr", "task",
           "spark_task", "tracked", "use", "current"]

F = TypeVar("F", bound=Callable[..., Any])


class Task:
    """One unit of reported work: ``completed`` of ``total`` (``None``: not known yet).

    The base class only keeps the counts; reporters subclass it to show them.

    >>> t = Task("materialize", total=None, unit="groups")
    >>> t.advance(); t.update(total=4); (t.completed, t.total)
    (1, 4)
    """

    def __init__(self, name: str, total: int | None = None, unit: str = "rows") -> None:
        self.name, self.total, self.unit = name, total, unit
        self.completed = 0
        self.detail = ""
        self.failed = False
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def note(self, detail: str) -> None:
        """Show ``detail`` next to the counts (e.g. ``"12,000 rows written"``).

        >>> t = Task("backfill", total=3, unit="batches"); t.note("10 rows"); t.detail
        '10 rows'
        """
        self.detail = detail
        self._show()

    @property
    def elapsed(self) -> float:
        """Seconds since the task started."""
        return time.monotonic() - self.started

    def eta(self) -> float | None:
        """Seconds left at the rate so far (None while the total or the rate is unknown).

        >>> t = Task("x", total=4); t.started -= 10; t.advance(1)
        >>> round(t.eta())
        30
        """
        if self.total is None or not self.completed:
            return None
        return self.elapsed * max(self.total - self.completed, 0) / self.completed

    def advance(self, n: int = 1, note: str | None = None) -> None:
        """Add ``n`` completed units (and set the note shown next to the counts)."""
        with self._lock:
            self._set(self.completed + n, self.total)
            if note is not None:
                self.detail = note
        self._show()

    def update(self, completed: int | None = None, total: int | None = None) -> None:
        """Set the absolute counts (either may be left as is)."""
        with self._lock:
            self._set(self.completed if completed is None else max(self.completed, completed),
                      self.total if total is None else total)
        self._show()

    def _set(self, completed: int, total: int | None) -> None:
        self.total = total
        self.completed = completed if total is None else min(completed, max(total, 0))

    def _show(self) -> None:
        """Reporters redraw here; the base class shows nothing."""

    def close(self) -> None:
        """The work ended (successfully or not)."""

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc: object) -> None:
        self.failed = exc[0] is not None
        self.close()


class Reporter:
    """Makes tasks. This base reporter shows nothing (the default)."""

    def task(self, name: str, total: int | None = None, unit: str = "rows") -> Task:
        """A new task; the caller closes it (or uses it as a context manager)."""
        return Task(name, total, unit)

    @property
    def silent(self) -> bool:
        """True when nothing is shown, so callers can skip work done only for display."""
        return type(self) is Reporter


_SILENT = Reporter()
_current: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "sparkfs_progress", default=None)


def current() -> Reporter:
    """The reporter in effect (a silent :class:`Reporter` unless :func:`use` set one)."""
    return _current.get() or _SILENT


@contextlib.contextmanager
def use(reporter: Reporter) -> Iterator[Reporter]:
    """Report through ``reporter`` inside the ``with`` block.

    >>> with use(Reporter()) as r:
    ...     current() is r
    True
    """
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)


def task(name: str, total: int | None = None, unit: str = "rows") -> Task:
    """A task of the current reporter (see the module example)."""
    return current().task(name, total, unit)


def _active_spark_context() -> Any:
    """The running SparkContext, or None; pyspark is never imported here."""
    ctx_module = sys.modules.get("pyspark.context")
    if ctx_module is None:
        return None
    return getattr(ctx_module.SparkContext, "_active_spark_context", None)


_GROUP_KEYS = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")


class _StagePoller:
    """Sums the Spark tasks of the work inside one :func:`spark_task`.

    When a SparkContext is already active, the work runs in its own job group (the
    caller's group is restored afterwards) and the poller follows that group's jobs and
    their stages, finished ones included. When Spark starts inside the work, every stage
    of the new context is the work's (stage ids count up from 0 per context).
    """

    def __init__(self, t: Task, interval: float) -> None:
        self.task, self.interval = t, interval
        self.seen: dict[int, tuple[int, int]] = {}  # stage id -> (tasks, completed tasks)
        self.sc: Any = _active_spark_context()
        self.group: str | None = None
        self.saved: dict[str, Any] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sparkfs-progress", daemon=True)

    def begin(self) -> None:
        if self.sc is not None:
            import uuid

            self.group = f"sparkfs-progress-{uuid.uuid4().hex[:12]}"
            self.saved = {k: self.sc.getLocalProperty(k) for k in _GROUP_KEYS}
            self.sc.setJobGroup(self.group, self.task.name, interruptOnCancel=False)
        self.thread.start()

    def end(self) -> None:
        self.stop.set()
        self.thread.join()
        if self.group is not None:
            for k, v in self.saved.items():
                self.sc.setLocalProperty(k, v)
        self.poll(final=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.poll()

    def _stage_ids(self, tracker: Any, final: bool) -> set[int]:
        if self.group is not None:
            ids: set[int] = set()
            for jid in tracker.getJobIdsForGroup(self.group):
                info = tracker.getJobInfo(jid)
                if info is not None:
                    ids.update(info.stageIds)
            return ids
        top = max([*tracker.getActiveStageIds(), *self.seen, -1])
        if final:  # stages that started and ended after the last poll
            misses = 0
            while misses < 3:
                top += 1
                misses = misses + 1 if tracker.getStageInfo(top) is None else 0
        return set(range(top + 1))

    def poll(self, final: bool = False) -> None:
        sc = self.sc if self.sc is not None else _active_spark_context()
        if sc is None:
            return
        try:
            tracker = sc.statusTracker()
            for sid in self._stage_ids(tracker, final):
                info = tracker.getStageInfo(sid)
                if info is not None:
                    self.seen[sid] = (info.numTasks, info.numCompletedTasks)
            if final:  # the work is over: a stage that ran fewer tasks than planned was
                # skipped (its shuffle output reused) or cut short; count what ran
                active = set(tracker.getActiveStageIds())
                self.seen = {sid: (c if sid not in active else n, c)
                             for sid, (n, c) in self.seen.items()}
        except Exception:  # noqa: BLE001 - the JVM went away at shutdown: stop showing
            return
        if self.seen:
            total = sum(n for n, _ in self.seen.values())
            done = sum(c for _, c in self.seen.values())
            self.task.update(completed=done, total=total)


@contextlib.contextmanager
def spark_task(name: str, interval: float = 0.25) -> Iterator[Task]:
    """A task fed from Spark's status tracker: completed/total Spark tasks of the work
    inside the ``with`` block (in this process's active SparkContext, if any).

    With a silent reporter no thread is started and no job group is set.

    >>> with spark_task("count") as t:   # no Spark running here: the counts stay at 0
    ...     pass
    >>> t.completed
    0
    """
    reporter = current()
    t = reporter.task(name, None, "tasks")
    if reporter.silent:
        with t:
            yield t
        return
    poller = _StagePoller(t, interval)
    with t:
        poller.begin()
        try:
            yield t
        finally:
            poller.end()


def _subject(args: tuple, kwargs: dict) -> str:
    for value in (*args, *kwargs.values()):
        if isinstance(value, str):
            return value
        name = getattr(value, "name", None)
        if isinstance(name, str):
            return name
        break
    return ""


def tracked(verb: str) -> Callable[[F], F]:
    """Decorate a method so that each call is a :func:`spark_task` named ``verb`` and the
    call's first argument (a group, training set or deployment name).

    >>> class Store:
    ...     @tracked("ingest")
    ...     def ingest(self, group):
    ...         return group.upper()
    >>> Store().ingest("weather")
    'WEATHER'
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if current().silent:
                return fn(self, *args, **kwargs)
            label = f"{verb} {_subject(args, kwargs)}".rstrip()
            with spark_task(label):
                return fn(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


class _RichTask(Task):
    def __init__(self, owner: RichReporter, name: str, total: int | None, unit: str) -> None:
        super().__init__(name, total, unit)
        self.owner = owner
        self.id = owner._add(self)

    def _show(self) -> None:
        self.owner._refresh(self)

    def close(self) -> None:
        self.owner._remove(self)


class RichReporter(Reporter):
    """Rich progress bars (description, bar, done/total, rate, elapsed, ETA, note) on
    ``console`` (default: stderr). Shows nothing when that console is neither a terminal
    nor a Jupyter notebook (where Rich draws the bars as a live HTML output), so piped and
    captured output (scripts, tests, one-line errors) stays clean.

    >>> import io
    >>> from rich.console import Console
    >>> out = io.StringIO()
    >>> r = RichReporter(Console(file=out, force_terminal=True, color_system=None,
    ...                            width=100))
    >>> with r.task("materialize weather", total=4, unit="groups") as t:
    ...     t.advance(4)
    >>> "4/4" in out.getvalue() and "groups/s" in out.getvalue()
    True
    """

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self._progress: Any = None
        self._open = 0
        self._lock = threading.RLock()

    def task(self, name: str, total: int | None = None, unit: str = "rows") -> Task:
        if not (self.console.is_terminal or self.console.is_jupyter):  # notebooks: live bars
            return Task(name, total, unit)
        return _RichTask(self, name, total, unit)

    def _make(self) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                unit = task.fields.get("unit", "")
                elapsed = task.finished_time if task.finished else task.elapsed
                if not elapsed or not task.completed:
                    return Text(f"- {unit}/s")
                return Text(f"{task.completed / elapsed:,.1f} {unit}/s")

        return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[unit]}"), Rate(),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                        TextColumn("{task.fields[detail]}"), console=self.console,
                        transient=False)

    def _add(self, t: Task) -> Any:
        with self._lock:
            if self._progress is None:
                self._progress = self._make()
                self._progress.start()
            self._open += 1
            return self._progress.add_task(t.name, total=t.total, unit=t.unit, detail=t.detail)

    def _refresh(self, t: _RichTask) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.update(t.id, completed=t.completed, total=t.total,
                                      detail=t.detail)

    def _remove(self, t: _RichTask) -> None:
        with self._lock:
            if self._progress is None:
                return
            self._progress.update(t.id, completed=t.completed, total=t.total)
            self._progress.stop_task(t.id)
            self._open -= 1
            if self._open == 0:
                self._progress.stop()
                self._progress = None


def _clock(seconds: float) -> str:
    """``H:MM:SS``.

    >>> _clock(3725.4)
    '1:02:05'
    """
    return str(dt.timedelta(seconds=int(seconds)))


class _PlainTask(Task):
    def __init__(self, owner: PlainReporter, name: str, total: int | None, unit: str) -> None:
        super().__init__(name, total, unit)
        self.owner = owner
        self.last = self.started

    def _show(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.owner.interval:
            self.last = now
            self.owner._line(self, done=False)

    def close(self) -> None:
        if not self.failed:
            self.owner._line(self, done=True)


class PlainReporter(Reporter):
    """Progress as plain text lines on ``stream`` (default: stderr), for logs and pipes:
    at most one line per task every ``interval`` seconds while it runs, and one when it
    ends without an error. A line has the counts, the task's note, the elapsed time and
    (total known) the ETA.

    >>> import io
    >>> out = io.StringIO()
    >>> with use(PlainReporter(out, interval=0)):
    ...     with task("backfill weather", total=2, unit="batches") as t:
    ...         t.advance(note="400 rows")
    ...         t.advance(note="795 rows")
    >>> lines = out.getvalue().splitlines()
    >>> lines[0].startswith("backfill weather: 1/2 batches, 400 rows, elapsed 0:00:00, ETA ")
    True
    >>> lines[-1]
    'backfill weather: done, 2/2 batches, 795 rows, elapsed 0:00:00'
    """

    def __init__(self, stream: Any = None, interval: float = 5.0) -> None:
        self.stream = stream
        self.interval = interval
        self._lock = threading.Lock()

    def task(self, name: str, total: int | None = None, unit: str = "rows") -> Task:
        return _PlainTask(self, name, total, unit)

    def _line(self, t: Task, done: bool) -> None:
        count = f"{t.completed:,}" + (f"/{t.total:,}" if t.total is not None else "")
        parts = [f"{count} {t.unit}"]
        if t.detail:
            parts.append(t.detail)
        parts.append(f"elapsed {_clock(t.elapsed)}")
        eta = None if done else t.eta()
        if eta is not None:
            parts.append(f"ETA {_clock(eta)}")
        text = f"{t.name}: {'done, ' if done else ''}{', '.join(parts)}"
        try:
            with self._lock:
                stream = self.stream if self.stream is not None else sys.stderr
                print(text, file=stream, flush=True)
        except Exception:  # noqa: BLE001 - a closed stream: the work goes on unshown
            pass


#: ``SPARKFS_PROGRESS``: ``auto`` (default: Rich bars on a terminal, plain lines
#: otherwise), ``rich``, ``plain`` or ``off``.
PROGRESS_ENV = "SPARKFS_PROGRESS"


def for_stderr() -> Reporter:
    """The reporter the ``sparkfs`` command uses, chosen by ``$SPARKFS_PROGRESS``: on
    ``auto``, Rich bars when stderr is a terminal, else plain lines (every
    ``$SPARKFS_PROGRESS_INTERVAL`` seconds, default 5, and one per finished task).

    >>> import os
    >>> os.environ["SPARKFS_PROGRESS"] = "off"; type(for_stderr()).__name__
    'Reporter'
    >>> os.environ["SPARKFS_PROGRESS"] = "plain"; type(for_stderr()).__name__
    'PlainReporter'
    >>> del os.environ["SPARKFS_PROGRESS"]
    """
    from .errors import SparkfsError

    mode = os.environ.get(PROGRESS_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "rich", "plain", "off"):
        raise SparkfsError(f"{PROGRESS_ENV}={mode!r} is unknown; use auto, rich, plain or off")
    if mode == "off":
        return Reporter()
    if mode == "rich" or (mode == "auto" and sys.stderr.isatty()):
        return RichReporter()
    raw = os.environ.get("SPARKFS_PROGRESS_INTERVAL", "5")
    try:
        interval = float(raw)
    except ValueError:
        raise SparkfsError(f"SPARKFS_PROGRESS_INTERVAL={raw!r} is not a number of seconds") \
            from None
    if not interval >= 0:
        raise SparkfsError(f"SPARKFS_PROGRESS_INTERVAL={raw!r} must be 0 or more seconds")
    return PlainReporter(interval=interval)
