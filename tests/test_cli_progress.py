"""Progress of a long ``sparkfs ingest`` (a backfill of several inputs) through the
``sparkfs.progress`` reporter seam, read from the command's output under Click's
CliRunner: plain lines (stderr is not a terminal) with batches done of all, rows written,
elapsed time and ETA; a rerun with the same run id commits nothing; a missing input is
refused before the first commit."""

from __future__ import annotations

import json
import re
import textwrap

import pandas as pd
import pytest
from typer.testing import CliRunner

from sparkfs.cli import build_app, main

REPO = textwrap.dedent('''
    from sparkfs import Entity, FeatureGroup, Field
    g = FeatureGroup("w", [Entity("airport", ["origin"])], "t", [Field("temp", "double")],
                     online=False)
''')


@pytest.fixture
def backfill(tmp_path, spark):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"project": "p", "data_dir": str(tmp_path / "data"),
                               "ingest": {"materialize": False}}))
    repo = tmp_path / "repo.py"
    repo.write_text(REPO)
    assert main(["--config", str(cfg), "apply", str(repo)]) == 0
    files = []
    for month in range(3):
        df = pd.DataFrame({"origin": ["JFK", "LGA", "EWR", "JFK"],
                           "t": pd.date_range(f"2013-0{month + 1}-01", periods=4, freq="h",
                                              tz="UTC"),
                           "temp": [1.0 + month, None, float("nan"), 4.0]})
        path = tmp_path / f"month-{month + 1}.parquet"
        df.to_parquet(path, coerce_timestamps="us")  # Spark reads no nanoseconds
        files.append(str(path))
    return str(cfg), files


def invoke(*args: str):
    return CliRunner().invoke(build_app(), list(args), catch_exceptions=False)


def test_backfill_shows_batches_rows_elapsed_and_eta(backfill, monkeypatch):
    cfg, files = backfill
    monkeypatch.setenv("SPARKFS_PROGRESS", "auto")  # stderr is not a terminal: plain lines
    monkeypatch.setenv("SPARKFS_PROGRESS_INTERVAL", "0")  # a line at every step
    result = invoke("--config", cfg, "ingest", "w", *files, "--run-id", "bf")
    assert result.exit_code == 0, result.stderr
    batches = [json.loads(line) for line in result.stdout.splitlines()]
    assert [b["input"] for b in batches] == files
    assert [b["run_id"] for b in batches] == ["bf.1", "bf.2", "bf.3"]
    assert [b["rows_written"] for b in batches] == [4, 4, 4]  # missing values are rows too
    versions = [b["delta_version"] for b in batches]
    assert versions == sorted(versions) and len(set(versions)) == 3
    lines = [x for x in result.stderr.splitlines() if x.startswith("backfill w@1: ")]
    step = re.compile(r"backfill w@1: (\d)/3 batches, (\d+) rows written, 0 skipped, "
                      r"0 quarantined, elapsed \d+:\d\d:\d\d, ETA \d+:\d\d:\d\d$")
    steps = [step.match(x) for x in lines[:-1]]
    assert all(steps), lines
    # one line per batch, with the rows written up to it
    assert [(m.group(1), m.group(2)) for m in steps if m] == [("1", "4"), ("2", "8"),
                                                             ("3", "12")]
    assert re.fullmatch(r"backfill w@1: done, 3/3 batches, 12 rows written, 0 skipped, "
                        r"0 quarantined, elapsed \d+:\d\d:\d\d", lines[-1]), lines[-1]
    # the Spark work inside each ingest reports too (tasks from Spark's status tracker)
    assert sum(1 for x in result.stderr.splitlines()
               if re.match(r"ingest w: done, \d+(/\d+)? tasks", x)) == 3

    again = invoke("--config", cfg, "ingest", "w", *files, "--run-id", "bf")
    assert again.exit_code == 0, again.stderr
    assert [json.loads(x)["rows_written"] for x in again.stdout.splitlines()] == [0, 0, 0]
    assert "backfill w@1: done, 3/3 batches, 0 rows written" in again.stderr


def test_backfill_refuses_a_missing_input_before_committing_anything(backfill, capsys,
                                                                      monkeypatch):
    cfg, files = backfill
    monkeypatch.setenv("SPARKFS_PROGRESS", "plain")
    assert main(["--config", cfg, "ingest", "w", files[0], "/nope/month-9.parquet"]) == 2
    out = capsys.readouterr()
    assert out.err.strip() == ("sparkfs ingest: error: input(s) '/nope/month-9.parquet' do "
                               "not exist; nothing was ingested")
    assert out.out == ""
    from sparkfs import FeatureStore
    from sparkfs.errors import NotFoundError

    fs = FeatureStore.from_config(cfg)

    try:
        version = fs.offline.current_version(fs.get_feature_group("w"))
    except NotFoundError:  # no Delta table yet
        version = 0
    assert version == 0  # nothing was committed: at most the empty table apply creates
    fs.close()


def test_bad_progress_setting_is_a_one_line_error(capsys, monkeypatch):
    monkeypatch.setenv("SPARKFS_PROGRESS", "loud")
    assert main(["list"]) == 2
    assert capsys.readouterr().err.strip() == (
        "sparkfs list: error: SPARKFS_PROGRESS='loud' is unknown; use auto, rich, plain or off")


def test_plain_lines_are_throttled_and_a_failed_task_has_no_done_line():
    import io

    from sparkfs import progress

    out = io.StringIO()
    with progress.use(progress.PlainReporter(out, interval=3600)):
        with progress.task("materialize w", total=3, unit="groups") as t:
            t.advance(3)  # within the interval: no line until the end
    assert re.fullmatch(r"materialize w: done, 3/3 groups, elapsed 0:00:\d\d\n", out.getvalue())
    out = io.StringIO()
    with progress.use(progress.PlainReporter(out, interval=0)):
        with pytest.raises(RuntimeError):
            with progress.task("backfill w@1", total=2, unit="batches") as t:
                t.advance(note="4 rows written")
                raise RuntimeError("boom")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backfill w@1: 1/2 batches, 4 rows written")
