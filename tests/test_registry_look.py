"""One look at a SQLite registry's files per prediction (``sparkfs.registry_files``): the
deployment cache and the plan cache of ``fs.predict`` stat the registry files once
between them, and a change made before a prediction (a redeploy by another store on the
same files, a newly applied feature) is still seen by that prediction. Real registry,
MLflow registry and SQLite online store in a temp dir; no Spark."""

from __future__ import annotations

import datetime as dt
import os

from deployed_weather import deploy_weather_model

from sparkfs import Entity, FeatureGroup, FeatureStore, Field, registry_files

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ROWS = [{"origin": "JFK"}]


def _counting_stat(monkeypatch, watched: str) -> list[str]:
    seen: list[str] = []
    real = os.stat

    def stat(path, *args, **kwargs):
        if str(path).startswith(watched):
            seen.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(registry_files.os, "stat", stat)
    return seen


def test_a_prediction_stats_the_registry_files_once(tmp_path, monkeypatch):
    fs = FeatureStore({"project": "test", "data_dir": str(tmp_path / "data")})
    deploy_weather_model(fs, NOW)
    # no periodic re-read while counting: a cached revision older than max_age_s (1 s; a
    # slow host passes it between two predictions) is read again, with its own looks
    fs.inference.deployments.max_age_s = 3600
    fs.predict("d", ROWS)  # caches warm
    registry = str(fs.registry.path)
    seen = _counting_stat(monkeypatch, registry)
    fs.predict("d", ROWS)
    assert seen == [registry, registry + "-wal"]
    fs.get_online_features(["weather:temp"], ROWS)  # its plan cached
    seen.clear()  # outside a prediction every reader looks for itself, as before
    fs.get_online_features(["weather:temp"], ROWS)
    fs.inference.deployments.get("d")
    assert seen == [registry, registry + "-wal"] * 2
    fs.close()


def test_a_change_made_before_a_prediction_is_seen_by_it(tmp_path):
    config = {"project": "test", "data_dir": str(tmp_path / "data")}
    fs = FeatureStore(config)
    deploy_weather_model(fs, NOW, versions=2)
    assert fs.predict("d", ROWS).model_version == 1
    other = FeatureStore(config)  # another store on the same files: its own caches
    other.deploy("d", model="m", version=2)
    assert fs.predict("d", ROWS).model_version == 2  # the very next prediction
    other.apply([FeatureGroup("rain", [Entity("airport", ["origin"])], "time_hour",
                              [Field("mm", "double")], online=True)])
    assert fs.get_online_features(["rain:mm"], ROWS).to_dict() == {"origin": ["JFK"],
                                                                   "mm": [None]}
    other.close()
    fs.close()
