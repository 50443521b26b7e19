"""The Typer/Rich ``sparkfs`` command: light startup, shell completion, usage errors,
``--json`` that parses, Rich tables that stay plain text when piped, and progress fed from
Spark's status tracker."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

from sparkfs import progress
from sparkfs.cli import _spread_multi_values, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("pyspark", "fastapi", "uvicorn", "mlflow", "matplotlib", "great_expectations")


def _python(code: str, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SPARKFS_CONFIG"} | env_extra
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_help_imports_no_spark_nor_web_framework_and_every_entry_point_works():
    out = _python("import sys; from sparkfs.cli import main; rc = main(['--help']); "
                  f"print(rc, sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 []"
    assert "training-set" in out.stdout and "get-online" in out.stdout
    module = subprocess.run([sys.executable, "-m", "sparkfs.cli", "training-set", "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert module.returncode == 0 and "recreate" in module.stdout, module.stderr
    script = os.path.join(os.path.dirname(sys.executable), "sparkfs")
    listed = subprocess.run([script, "api-key", "create", "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert listed.returncode == 0 and "--scope" in listed.stdout, listed.stderr


def test_show_completion_prints_a_shell_script():
    out = _python("import sys; from sparkfs.cli import main; "
                  "sys.exit(main(['--show-completion', 'bash']))",
                  # the shell is named, not detected from the parent processes (a test
                  # runner started outside a shell has none)
                  _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    assert out.returncode == 0, out.stderr
    assert "_SPARKFS_COMPLETE" in out.stdout and "complete " in out.stdout


def test_usage_errors_exit_2_with_the_command_and_the_problem(capsys):
    assert main(["list", "--nope"]) == 2
    err = capsys.readouterr().err
    assert "sparkfs list: error:" in err and "--nope" in err and "Traceback" not in err
    assert main(["materialize", "--engine", "gpu"]) == 2
    assert "'gpu' is not one of" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2
    assert "No such command 'no-such-command'" in capsys.readouterr().err
    assert main(["training-set", "create", "ts"]) == 2  # --spine etc. missing
    assert "Missing option" in capsys.readouterr().err
    assert main(["get-online", "-f", "weather:temp"]) == 2  # a SparkfsError: one line
    assert capsys.readouterr().err.strip() == (
        "sparkfs get-online: error: give at least one --entity KEY=VALUE or --entities JSON")


def test_several_values_after_one_option_like_argparse_nargs():
    assert _spread_multi_values(["get-online", "-f", "a:x", "b:y", "-e", "k=--5", "c"]) == [
        "get-online", "-f", "a:x", "-f", "b:y", "-e", "k=--5", "c"]
    assert _spread_multi_values(["list", "-f", "a", "b"]) == ["list", "-f", "a", "b"]


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"project": "t", "data_dir": str(tmp_path / "data")}))
    repo = tmp_path / "repo.py"
    repo.write_text(textwrap.dedent('''
        from sparkfs import Entity, FeatureGroup, Field
        e = Entity("user", join_keys=["user_id"])
        g = FeatureGroup("clicks", [e], "ts", [Field("n", "long", description="[bold]n[/bold]")],
                         description="clicks [red]per[/red] user", tags={"team": "ads"})
    '''))
    assert main(["--config", str(path), "apply", str(repo)]) == 0
    return str(path)


@pytest.mark.parametrize("args, check", [
    (["list"], lambda d: d[0]["name"] == "clicks" and d[0]["version"] == 1),
    (["describe", "clicks@1"], lambda d: d["schema"][0]["name"] == "n"),
    (["search", "per", "user"], lambda d: d[0]["name"] == "clicks"),
    (["training-set", "list"], lambda d: d == []),
    (["gc"], lambda d: d == {"applied": False, "stages": [], "training_sets": []}),
])
def test_json_output_parses_and_has_no_markup(cfg, capsys, args, check):
    capsys.readouterr()
    assert main(["--config", cfg, *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert check(json.loads(out))


def test_line_json_listings_are_one_object_per_line(cfg, capsys):
    capsys.readouterr()
    for args in (["deployments", "--json"], ["streams", "--all", "--json"]):
        assert main(["--config", cfg, *args]) == 0
        assert capsys.readouterr().out == ""  # none yet: no lines, nothing else


def test_tables_are_plain_aligned_text_and_user_text_is_not_markup(cfg, capsys):
    capsys.readouterr()
    assert main(["--config", cfg, "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["GROUP", "VERSION", "KEYS", "EVENT", "TIME", "FEATURES",
                                "ONLINE", "TTL"]
    assert lines[1].split() == ["clicks", "1", "user_id", "ts", "1", "yes", "-"]
    assert lines[0].index("VERSION") == lines[1].index("1")  # columns line up
    assert main(["--config", cfg, "search", "per"]) == 0
    out = capsys.readouterr().out
    assert "clicks [red]per[/red] user" in out and "\x1b" not in out
    assert main(["--config", cfg, "describe", "clicks"]) == 0
    assert "[bold]n[/bold]" in capsys.readouterr().out


class Recorder(progress.Reporter):
    def __init__(self):
        self.tasks = []

    def task(self, name, total=None, unit="rows"):
        t = progress.Task(name, total, unit)
        self.tasks.append(t)
        return t


def test_spark_task_counts_the_spark_tasks_of_its_work_and_restores_the_job_group(spark):
    sc = spark.sparkContext
    sc.setJobGroup("callers-group", "the caller's own job group")
    try:
        with progress.use(Recorder()) as rec:
            with progress.spark_task("count", interval=0.05) as t:
                spark.range(0, 10_000, 1, 4).selectExpr("id % 7 AS k").groupBy("k").count() \
                    .collect()
        assert rec.tasks == [t] and t.unit == "tasks"
        assert t.total is not None and t.total >= 4 and t.completed == t.total
        assert sc.getLocalProperty("spark.jobGroup.id") == "callers-group"
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)


def test_store_operations_report_through_the_current_reporter(tmp_path):
    import pandas as pd

    from sparkfs import Entity, FeatureGroup, FeatureStore, Field

    fs = FeatureStore({"project": "p", "data_dir": str(tmp_path / "d")})
    fs.apply([FeatureGroup("w", [Entity("a", ["origin"])], "t", [Field("temp", "double")])])
    df = pd.DataFrame({"origin": ["JFK", "EWR"], "temp": [1.0, None],
                       "t": pd.to_datetime(["2013-01-01", "2013-01-02"], utc=True)})
    assert fs.ingest("w", df, materialize=False).rows_written == 2  # silent by default
    with progress.use(Recorder()) as rec:
        fs.ingest("w", df.assign(temp=[2.0, 3.0]), run_id="r2", materialize=True)
        fs.materialize("w", engine="local")
    assert [t.name for t in rec.tasks] == ["ingest w", "materialize w", "materialize w"]
    assert all(t.unit == "tasks" for t in rec.tasks)
    fs.close()


def test_rich_bars_show_counts_and_rates_on_a_terminal_and_nothing_when_piped():
    from rich.console import Console

    shown = io.StringIO()
    reporter = progress.RichReporter(Console(file=shown, force_terminal=True,
                                             color_system=None, width=120))
    with progress.use(reporter):
        with progress.task("ingest weather", total=10, unit="rows") as t:
            t.advance(4)
            t.update(completed=10)
    text = shown.getvalue()
    assert "ingest weather" in text and "10/10" in text and "rows/s" in text
    piped = io.StringIO()
    quiet = progress.RichReporter(Console(file=piped, force_terminal=False))
    with quiet.task("ingest weather", total=3) as t:
        t.advance(3)
    assert piped.getvalue() == "" and t.completed == 3


def test_counts_never_go_back_nor_past_the_total():
    t = progress.Task("x", total=5)
    t.update(completed=4)
    t.update(completed=2)   # a stale poll
    t.advance(10)
    assert (t.completed, t.total) == (5, 5)
