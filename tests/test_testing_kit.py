"""The reusable test kit: the pytest plugin loads lazily, a missing Java skips real-HBase
tests with a one-line reason (and fails them under CI), and the launcher refuses clearly."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from sparkfs.testing.hbase_server import HBaseServerError, RealHBase

NO_JAVA = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "CI",
                                                            "SPARKFS_REQUIRE_REAL_HBASE",
                                                            "SPARKFS_TEST_HBASE")}
NO_JAVA["PATH"] = "/nonexistent"


def test_the_plugin_imports_nothing_heavy():
    code = ("import sys, sparkfs.testing.plugin\n"
            "heavy = [m for m in ('thriftpy2', 'happybase', 'sparkfs.testing.hbase', "
            "'sparkfs.testing.hbase_server', 'pyspark') if m in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _run_pytest(tmp_path, env):
    test = tmp_path / "test_uses_real_hbase.py"
    test.write_text(textwrap.dedent("""
        def test_it(real_hbase):
            assert real_hbase.port
    """))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "sparkfs.testing.plugin",
                           "-p", "no:cacheprovider", "-rs", "-q", str(test)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)


def test_without_java_real_hbase_tests_skip_with_a_reason(tmp_path):
    out = _run_pytest(tmp_path, NO_JAVA)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 skipped" in out.stdout
    assert "no real HBase: no Java: install a JDK 17" in out.stdout


def test_under_ci_a_missing_real_hbase_fails_the_run(tmp_path):
    out = _run_pytest(tmp_path, dict(NO_JAVA, CI="true"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "a real HBase is required here (CI): no Java" in out.stdout


def test_the_launcher_and_cli_refuse_clearly_without_java(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(HBaseServerError, match="cannot start a real HBase: no Java"):
        RealHBase(tmp_path).start()
    cli = subprocess.run([sys.executable, "-c", "import sys; from sparkfs.cli import main; "
                          "sys.exit(main(['dev-hbase', '--real', '--port', '0']))"],
                         capture_output=True, text=True, env=NO_JAVA, timeout=120)
    assert cli.returncode == 2
    assert "sparkfs dev-hbase: error: cannot start a real HBase: no Java" in cli.stderr
    assert "Traceback" not in cli.stderr
