"""A light install: ``sparkfs[serve,hbase]`` in a clean virtual environment (no pyspark, no
Java), built from this tree with ``constraints.txt``, serves a repo that another
environment registered. Real ``python -m venv``, real ``pip install``, real CLI processes
and HTTP; pip's cache makes the install quick after the first run.

It proves: the core and those extras install without pyspark; ``sparkfs apply``,
``materialize --engine local``, ``serve``, DuckDB training sets and history reads work
there; importing ``sparkfs.serving`` and
the user's transform module imports no pyspark (here and in the full environment); and a
call that needs a missing extra fails with one line naming it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest
from deltalake import write_deltalake
from online_conformance import T0, rows

from sparkfs import FeatureStore
from sparkfs.repo import load_repo

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRANSFORMS = '''
"""The user's transform module: plain pandas, no pyspark."""
import pandas as pd

from sparkfs import transform


@transform(output="double", on_demand=True, inputs={"offset": "double"},
           features={"temp": "weather:temp"})
def temp_c(offset: pd.Series, temp: pd.Series) -> pd.Series:
    return (temp - 32.0) * 5.0 / 9.0 + offset
'''

REPO = '''
from light_transforms import temp_c  # noqa: F401
from sparkfs import Entity, FeatureGroup, Field

airport = Entity("airport", join_keys=["origin"])
weather = FeatureGroup("weather", [airport], "time_hour",
                       [Field("temp", "double"), Field("wind_speed", "double")], online=True)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _source_tree(dest) -> None:
    """The files a wheel is built from (not the work tree: no .venv, no build/ left there)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy(os.path.join(ROOT, name), dest / name)
    shutil.copytree(os.path.join(ROOT, "sparkfs"), dest / "sparkfs",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """A clean venv with ``sparkfs[serve,hbase]`` installed from this tree."""
    tmp = tmp_path_factory.mktemp("light")
    src = tmp / "src"
    _source_tree(src)
    venv = tmp / "venv"
    log = tmp / "install.log"
    with open(log, "w") as out:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=out,
                       stderr=subprocess.STDOUT, timeout=300)
        pip = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
             "-c", str(src / "constraints.txt"), f"{src}[serve,hbase]"],
            stdout=out, stderr=subprocess.STDOUT, timeout=1200, cwd=str(tmp))
    if pip.returncode != 0:
        pytest.fail("pip install sparkfs[serve,hbase] failed:\n" + log.read_text()[-5000:])
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SPARKFS_CONFIG", "SPARK_HOME", "PYSPARK_PYTHON",
                        "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    yield {"venv": venv, "bin": venv / "bin", "env": env, "log": log, "tmp": tmp}
    shutil.rmtree(venv, ignore_errors=True)  # ~0.6 GB; pytest keeps module dirs to the end


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """The repo registered and its history written from this (full) environment."""
    tmp = tmp_path_factory.mktemp("registered")
    repo_dir = tmp / "repo"
    repo_dir.mkdir()
    (repo_dir / "light_transforms.py").write_text(TRANSFORMS)
    (repo_dir / "features.py").write_text(REPO)
    conf = tmp / "conf.yaml"
    conf.write_text(f"project: light\ndata_dir: {tmp / 'data'}\n")
    fs = FeatureStore.from_config(str(conf))
    try:
        fs.apply(load_repo(str(repo_dir / "features.py")))
        g = fs.get_feature_group("weather")
        write_deltalake(fs.offline.table_uri(g), rows(g, [
            {"origin": "JFK", "time_hour": T0, "temp": 50.0, "wind_speed": 3.0},
            {"origin": "LGA", "time_hour": T0, "temp": 32.0, "wind_speed": None}]),
            mode="append")
    finally:
        fs.close()
        sys.modules.pop("features", None)
        sys.modules.pop("light_transforms", None)
    return {"conf": conf, "repo": repo_dir}


def _run(light, args, cwd, timeout=300):
    return subprocess.run(args, capture_output=True, text=True, env=light["env"],
                          cwd=str(cwd), timeout=timeout)


def test_light_venv_has_no_pyspark_and_the_extras(light):
    code = ("import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None "
            "for m in ['pyspark', 'delta', 'great_expectations', 'scipy', 'matplotlib', "
            "'fastapi', 'uvicorn', 'happybase', 'thriftpy2', 'duckdb', 'deltalake', 'sparkfs']}))")
    out = _run(light, [str(light["bin"] / "python"), "-c", code], light["tmp"])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "pyspark": False, "delta": False, "great_expectations": False, "scipy": False,
        "matplotlib": False, "fastapi": True, "uvicorn": True, "happybase": True,
        "thriftpy2": True, "duckdb": True, "deltalake": True, "sparkfs": True}
    where = _run(light, [str(light["bin"] / "python"), "-c",
                         "import sparkfs; print(sparkfs.__file__)"], light["tmp"])
    assert where.stdout.strip().startswith(str(light["venv"])), where.stdout  # not this tree


def test_serving_and_the_transform_module_import_no_pyspark(light, registered):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import sparkfs.serving, "
            "sparkfs.serving.app, light_transforms, features; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))")
    for python, env in ((str(light["bin"] / "python"), light["env"]),   # pyspark absent
                        (sys.executable, dict(os.environ))):             # pyspark installed
        out = subprocess.run([python, "-c", code, str(registered["repo"])], capture_output=True,
                             text=True, env=env, cwd=str(registered["repo"]), timeout=300)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[]", (python, out.stdout)


def test_apply_materialize_and_serve_a_repo_registered_elsewhere(light, registered):
    sparkfs = str(light["bin"] / "sparkfs")
    conf, repo = str(registered["conf"]), registered["repo"]
    applied = _run(light, [sparkfs, "--config", conf, "apply", "features.py"], repo)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.startswith("no changes ("), applied.stdout  # same code, same specs

    # the Spark engine is an extra: one line naming it, exit code 2, nothing written
    spark = _run(light, [sparkfs, "--config", conf, "materialize", "weather"], repo)
    assert spark.returncode == 2
    assert "pip install 'sparkfs[spark]'" in spark.stderr and "Traceback" not in spark.stderr
    local = _run(light, [sparkfs, "--config", conf, "materialize", "--engine", "local"], repo)
    assert local.returncode == 0, local.stderr
    assert [json.loads(x)["keys_written"] for x in local.stdout.splitlines()] == [2]

    port = _free_port()
    log_path = light["tmp"] / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sparkfs, "--config", conf, "serve", "--repo", "features.py",
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                cwd=str(repo), env=light["env"], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_healthy(base, proc, log_path)
        assert health["pyspark_loaded"] is False
        body = {"features": ["weather:temp", "weather:wind_speed", "temp_c:temp_c"],
                "entity_rows": [{"origin": "JFK"}, {"origin": "LGA"}, {"origin": "EWR"}],
                "request_data": {"offset": [0.0, 1.0, 2.0]}}
        got = _post(base + "/features", body)
        cols = dict(zip(got["metadata"]["feature_names"], got["results"]))
        assert cols["origin"]["values"] == ["JFK", "LGA", "EWR"]
        assert cols["temp"]["values"] == [50.0, 32.0, None]
        assert cols["temp"]["statuses"] == ["present", "present", "missing"]
        assert cols["wind_speed"]["values"] == [3.0, None, None]
        assert cols["temp_c"]["values"] == [10.0, 1.0, None]
    finally:
        _stop(proc)


def test_duckdb_training_set_and_history_without_spark(light, registered):
    code = textwrap.dedent(f"""
        import json, sys
        import pandas as pd
        from sparkfs import FeatureStore
        fs = FeatureStore.from_config({str(registered['conf'])!r})
        t = pd.Timestamp("2013-01-01 01:00", tz="UTC")
        spine = pd.DataFrame({{"origin": ["JFK", "LGA", "EWR"], "ts": [t, t, t]}})
        ts = fs.get_historical_features(spine, ["weather:temp"], timestamp_col="ts",
                                        engine="duckdb")
        print(json.dumps({{"temp": ts.to_arrow().column("temp").to_pylist(),
                          "rows": fs.read_history("weather").to_arrow().num_rows,
                          "pyspark": "pyspark" in sys.modules}}))
        """)
    out = _run(light, [str(light["bin"] / "python"), "-c", code], light["tmp"])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"temp": [50.0, 32.0, None], "rows": 2, "pyspark": False}


def test_a_missing_extra_names_it(light, registered):
    code = textwrap.dedent(f"""
        from sparkfs import FeatureStore, MissingExtraError
        fs = FeatureStore.from_config({str(registered['conf'])!r})
        try:
            fs.spark
        except MissingExtraError as exc:
            print(exc)
        """)
    out = _run(light, [str(light["bin"] / "python"), "-c", code], light["tmp"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("the Spark engine (a SparkSession) needs pyspark, which is "
                                  "not installed: pip install 'sparkfs[spark]'")


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _wait_healthy(base: str, proc: subprocess.Popen, log_path, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError("the service did not start:\n" + open(log_path).read())
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
