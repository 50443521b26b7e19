"""Unit tests of sparkfs.registry, each run on a real SQLite file and on a real PostgreSQL
(a throw-away server, ``sparkfs.testing.postgres``), some with two real processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from sparkfs.definitions import Aggregation, Entity, FeatureGroup, Field, TransformRef
from sparkfs.errors import DefinitionError, NotFoundError, RegistryError
from sparkfs.registry import Registry
from sparkfs.testing.postgres import postgres_server  # noqa: F401 (fixture)

AIRPORT = Entity("airport", join_keys=["origin"], description="NYC airport")


def weather(**kw) -> FeatureGroup:
    args = dict(name="weather", entities=[AIRPORT], event_time="time_hour",
                schema=[Field("temp", "double"), Field("wind_speed", "double")],
                ttl="2d", description="hourly weather", owner="a@x", tags={"source": "noaa"})
    args.update(kw)
    return FeatureGroup(**args)


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    """Where a fresh, empty registry lives: a SQLite file path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "reg" / "registry.db")
    return request.getfixturevalue("postgres_server").database()


@pytest.fixture
def reg(location):
    r = Registry(location)
    yield r
    r.close()


def test_round_trip(reg):
    g = weather(aggregations=[Aggregation("temp", "max", ["1d"])],
                transforms=[TransformRef("feels", ("temp",), (Field("feels", "double"),), "f1",
                                         "repo:feels")])
    res = reg.apply([AIRPORT, g])
    assert res.created == ["entity:airport", "feature_group:weather@1"]
    assert res.updated == [] and res.unchanged == []
    back = reg.get_group("weather")
    assert back == g and back.to_spec() == g.to_spec()
    assert reg.get_entity("airport") == AIRPORT
    assert [x.name for x in reg.list_groups()] == ["weather"]
    assert reg.list_entities() == [AIRPORT]


def test_versions_and_latest(reg):
    reg.apply([weather(), weather(version=2, schema=[Field("temp", "float")]),
               weather(name="alpha")])
    assert reg.versions("feature_group", "weather") == [1, 2]
    assert reg.get_group("weather").version == 2
    assert reg.get_group("weather", 1).schema[0].dtype == "double"
    assert [(g.name, g.version) for g in reg.list_groups()] == [
        ("alpha", 1), ("weather", 1), ("weather", 2)]


def test_missing_objects_say_what_exists(reg):
    with pytest.raises(NotFoundError, match="'weather' is not registered.*run apply first"):
        reg.get_group("weather")
    reg.apply([weather()])
    with pytest.raises(NotFoundError, match="has no version 3; registered versions: \\[1\\]"):
        reg.get_group("weather", 3)
    with pytest.raises(NotFoundError, match="registered groups: \\['weather'\\]"):
        reg.get_group("planes")
    with pytest.raises(NotFoundError, match="entity 'plane' is not registered"):
        reg.get_entity("plane")
    assert reg.get_entity("plane", missing_ok=True) is None


def test_identical_reapply_is_a_noop(reg):
    reg.apply([AIRPORT, weather()])
    before = reg.history()
    res = reg.apply([AIRPORT, weather()])
    assert res.changed == [] and res.unchanged == ["entity:airport", "feature_group:weather@1"]
    assert reg.history() == before


def test_metadata_change_is_allowed_and_kept_in_history(reg):
    reg.apply([weather()])
    res = reg.apply([weather(description="new words", owner="b@x", tags={"t": "1"}, ttl="7d",
                             online=False, validation="quarantine",
                             schema=[Field("temp", "double", "degrees F"),
                                     Field("wind_speed", "double")])])
    assert res.updated == ["feature_group:weather@1"]
    g = reg.get_group("weather")
    assert (g.description, g.owner, g.online, g.validation) == ("new words", "b@x", False,
                                                                 "quarantine")
    assert g.schema[0].description == "degrees F"
    hist = reg.history("feature_group", "weather")
    assert [h["action"] for h in hist] == ["create", "update"]
    assert hist[0]["spec"]["description"] == "hourly weather"
    assert hist[1]["spec"]["description"] == "new words"


@pytest.mark.parametrize("change,part", [
    (dict(schema=[Field("temp", "float"), Field("wind_speed", "double")]), "schema"),
    (dict(schema=[Field("temp", "double")]), "schema"),
    (dict(schema=[Field("temp", "double"), Field("wind_speed", "double"), Field("x", "int")]),
     "schema"),
    (dict(event_time="observed_at"), "event time"),
    (dict(entities=[Entity("station", join_keys=["origin"])]), "entities"),
    (dict(aggregations=[Aggregation("temp", "max", ["1d"])]), "aggregations"),
    (dict(transforms=[TransformRef("t", ("temp",), (Field("t2", "double"),), "fp", "m:t")]),
     "transforms"),
])
def test_incompatible_change_is_refused_with_bump_the_version(reg, change, part):
    reg.apply([weather()])
    before = reg.history()
    with pytest.raises(RegistryError) as exc:
        reg.apply([weather(**change)])
    msg = str(exc.value)
    assert "'weather' version 1" in msg and part in msg
    assert "Bump the version" in msg and "version=2" in msg
    assert reg.get_group("weather") == weather()
    assert reg.history() == before
    # The same change under a new version is accepted.
    assert reg.apply([weather(version=2, **change)]).created == ["feature_group:weather@2"]


def test_changed_transform_code_is_incompatible(reg):
    def tr(fp):
        return TransformRef("feels", ("temp",), (Field("feels", "double"),), fp, "repo:feels")

    reg.apply([weather(transforms=[tr("v1")])])
    with pytest.raises(RegistryError, match="transforms.*Bump the version"):
        reg.apply([weather(transforms=[tr("v2")])])


def test_entity_join_key_change_is_refused(reg):
    reg.apply([AIRPORT])
    with pytest.raises(RegistryError, match="entity 'airport' already exists with join keys"):
        reg.apply([Entity("airport", join_keys=["faa"])])
    with pytest.raises(RegistryError, match="with join keys \\['faa'\\], but the registry has"):
        reg.apply([weather(entities=[Entity("airport", join_keys=["faa"])])])
    # metadata of an entity may change
    assert reg.apply([Entity("airport", join_keys=["origin"], description="x")]).updated == [
        "entity:airport"]


def test_one_bad_object_refuses_the_whole_call(reg):
    reg.apply([weather()])
    planes = FeatureGroup("planes", [Entity("plane", join_keys=["tailnum"])], "ts",
                          [Field("seats", "int")])
    with pytest.raises(RegistryError, match="Bump the version"):
        reg.apply([planes.entities[0], planes, weather(schema=[Field("temp", "string")])])
    assert reg.versions("feature_group", "planes") == []
    assert reg.get_entity("plane", missing_ok=True) is None
    assert len(reg.history()) == 1


def test_same_object_twice_with_different_definitions_is_refused(reg):
    with pytest.raises(RegistryError, match="feature_group:weather@1 is given twice"):
        reg.apply([weather(), weather(description="other")])
    assert reg.list_groups() == []


def test_unknown_objects_are_refused(reg):
    with pytest.raises(DefinitionError, match="cannot be applied"):
        reg.apply(["weather"])


def test_put_get_list_delete_for_other_kinds(reg):
    reg.put("training_set", "delays", 1, {"features": ["weather:temp"], "rows": 10})
    reg.put("training_set", "delays", 2, {"features": ["weather:temp"], "rows": 20})
    assert reg.get("training_set", "delays") == {"features": ["weather:temp"], "rows": 20}
    assert reg.get("training_set", "delays", 1)["rows"] == 10
    assert reg.get("training_set", "other") is None
    assert [s["rows"] for s in reg.list("training_set")] == [10, 20]
    with pytest.raises(RegistryError, match="already exists"):
        reg.put("training_set", "delays", 1, {"rows": 0}, replace=False)
    reg.put("training_set", "delays", 1, {"rows": 11})
    assert reg.get("training_set", "delays", 1) == {"rows": 11}
    with pytest.raises(DefinitionError):
        reg.put("training_set", "../../x", 1, {})
    assert reg.delete("training_set", "delays", 1) is True
    assert reg.delete("training_set", "delays", 1) is False
    assert [h["action"] for h in reg.history("training_set")] == [
        "create", "create", "update", "delete"]


def test_registry_survives_reopen_and_is_plain_sqlite(tmp_path):
    path = str(tmp_path / "r.db")
    Registry(path).apply([AIRPORT, weather()])
    assert Registry(path).get_group("weather") == weather()
    con = sqlite3.connect(path)
    kinds = con.execute("SELECT kind, name, version FROM objects ORDER BY kind").fetchall()
    assert kinds == [("entity", "airport", 0), ("feature_group", "weather", 1)]
    spec = json.loads(con.execute("SELECT spec FROM objects WHERE kind='feature_group'").fetchone()[0])
    assert spec["schema"][0] == {"name": "temp", "dtype": "double", "description": "", "tags": {}}
    con.close()


def test_registry_is_readable_without_spark(location):
    path = location
    Registry(path).apply([weather()])
    code = textwrap.dedent(f"""
        import sys
        from sparkfs.registry import Registry
        g = Registry({path!r}).get_group("weather")
        assert g.join_keys == ("origin",), g
        assert "pyspark" not in sys.modules and "py4j" not in sys.modules
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


_WORKER = textwrap.dedent("""
    import os, sys, time
    from sparkfs.definitions import Entity, FeatureGroup, Field
    from sparkfs.registry import Registry

    path, who, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    reg = Registry(path)
    airport = Entity("airport", join_keys=["origin"])
    while not os.path.exists(go):
        time.sleep(0.005)
    for i in range(n):
        own = FeatureGroup(f"{who}_{i}", [airport], "ts", [Field("x", "double")])
        shared = FeatureGroup("shared", [airport], "ts", [Field("x", "double")],
                              description=f"{who}-{i}")
        reg.apply([airport, own, shared])
    print("done", who)
""")


def test_concurrent_apply_from_two_processes_loses_nothing(tmp_path, location):
    path = location
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    go = tmp_path / "go"
    n = 25
    procs = [subprocess.Popen([sys.executable, str(script), path, who, str(n), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who in ("a", "b")]
    time.sleep(1.0)  # both interpreters are up and polling
    go.write_text("")
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    reg = Registry(path)
    names = {g.name for g in reg.list_groups()}
    assert names == {f"{w}_{i}" for w in "ab" for i in range(n)} | {"shared"}
    shared = reg.history("feature_group", "shared")
    descriptions = [h["spec"]["description"] for h in shared]
    # every apply of "shared" carried a distinct description: each one is in the history
    assert sorted(descriptions) == sorted(f"{w}-{i}" for w in "ab" for i in range(n))
    assert [h["action"] for h in shared] == ["create"] + ["update"] * (2 * n - 1)
    assert reg.get_group("shared").description == descriptions[-1]
    seqs = [h["seq"] for h in reg.history()]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert [h["action"] for h in reg.history("entity")] == ["create"]
