"""sparkfs.jvm: pinned JVM bundles fetched once into a cache, clear errors otherwise."""

from __future__ import annotations

import shutil

import pytest

from sparkfs import jvm

pytestmark = pytest.mark.skipif(shutil.which("mvn") is None, reason="Maven (mvn) is not installed")


def _bundle_pom(tmp_path, body: str) -> None:
    (tmp_path / "poms" / "delta").mkdir(parents=True)
    (tmp_path / "poms" / "delta" / "pom.xml").write_text(f"""<?xml version="1.0"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>t</groupId><artifactId>delta</artifactId><version>1</version><packaging>pom</packaging>
<dependencies>{body}</dependencies></project>""")


def test_missing_artifact_names_it_and_the_registry_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKFS_JVM_POMS", str(tmp_path / "poms"))
    monkeypatch.setenv("SPARKFS_JVM_CACHE", str(tmp_path / "cache"))
    _bundle_pom(tmp_path, "<dependency><groupId>io.delta</groupId>"
                          "<artifactId>delta-spark_2.13</artifactId><version>0.0.0-nope</version>"
                          "</dependency>")
    with pytest.raises(jvm.JvmArtifactError) as err:
        jvm.fetch("delta")
    msg = str(err.value)
    assert "io.delta:delta-spark_2.13" in msg and "0.0.0-nope" in msg
    assert "\x1b[" not in msg
    assert not (tmp_path / "cache" / "delta").exists()  # nothing half-written
    assert not jvm.is_fetched("delta")


def test_second_fetch_starts_no_maven(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKFS_JVM_POMS", str(tmp_path / "poms"))
    monkeypatch.setenv("SPARKFS_JVM_CACHE", str(tmp_path / "cache"))
    _bundle_pom(tmp_path, "<dependency><groupId>io.delta</groupId>"
                          "<artifactId>delta-storage</artifactId><version>4.4.0</version>"
                          "</dependency>")
    first = jvm.jars("delta")
    assert "delta-storage-4.4.0.jar" in [p.name for p in first]
    monkeypatch.setattr(jvm.shutil, "which", lambda name: None)  # Maven gone: must not be needed
    assert jvm.jars("delta") == first
    assert jvm.classpath("delta").split(":") == [str(p) for p in first]
    # a changed pom is a new pin: it must be fetched again (and here cannot be)
    _pom = tmp_path / "poms" / "delta" / "pom.xml"
    _pom.write_text(_pom.read_text().replace("4.4.0", "4.3.1"))
    with pytest.raises(jvm.JvmArtifactError, match="Maven .* is not installed"):
        jvm.fetch("delta")


def test_cli_usage_and_unknown_bundle(capsys):
    assert jvm.main([]) == 2
    assert jvm.main(["fetch", "nope"]) == 2
    assert "unknown JVM bundle 'nope'" in capsys.readouterr().err
