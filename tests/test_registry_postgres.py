"""The PostgreSQL registry's own guarantees, on a real throw-away server: opening and
reading write nothing, a held write lock or a read-only role never stops reads and makes
writes fail fast with a clear message, an unreachable server is one clear error without the
password, and the CLI works end to end with ``registry.url``. (The rules shared with SQLite
run on both backends in ``test_registry.py``.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import psycopg
import pytest

from sparkfs.definitions import Entity, FeatureGroup, Field
from sparkfs.errors import RegistryUnavailableError
from sparkfs.registry import Registry
from sparkfs.registry_sql import _PG_LOCK_KEY
from sparkfs.testing.postgres import postgres_server  # noqa: F401 (fixture)

AIRPORT = Entity("airport", join_keys=["origin"])
WEATHER = FeatureGroup("weather", [AIRPORT], "time_hour", [Field("temp", "double")])
STORMS = FeatureGroup("storms", [AIRPORT], "time_hour", [Field("rain", "double")])


@pytest.fixture
def url(request):
    return request.getfixturevalue("postgres_server").database()


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as con:
        return [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='public' "
            "ORDER BY 1")]


def test_opening_and_reading_write_nothing(url):
    reg = Registry(url)
    assert reg.list_groups() == [] and reg.history() == [] and reg.get("entity", "x") is None
    assert _tables(url) == []
    reg.apply([AIRPORT, WEATHER])
    assert _tables(url) == ["history", "meta", "objects"]
    reg.close()


def test_a_held_write_lock_stops_no_read_and_writes_fail_fast(url):
    reg = Registry(url, lock_timeout_s=1)
    reg.apply([AIRPORT, WEATHER])
    with psycopg.connect(url, autocommit=True) as other:  # another writer, mid-apply
        other.execute("SELECT pg_advisory_lock(%s)", (_PG_LOCK_KEY,))
        assert [g.name for g in reg.list_groups()] == ["weather"]
        with pytest.raises(RegistryUnavailableError,
                           match="is locked by another process .writing waited 1 s"):
            reg.apply([STORMS])
        other.execute("SELECT pg_advisory_unlock(%s)", (_PG_LOCK_KEY,))
    assert reg.apply([STORMS]).created == ["feature_group:storms@1"]  # free again: applies
    assert [h["name"] for h in reg.history()] == ["airport", "weather", "storms"]
    reg.close()


def test_a_read_only_role_reads_and_its_writes_are_refused_whole(url):
    Registry(url).apply([AIRPORT, WEATHER])
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE ROLE reader LOGIN")
        con.execute("ALTER ROLE reader SET default_transaction_read_only = on")
        con.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
    reader_url = url.replace("postgres@", "reader@", 1)
    reg = Registry(reader_url)
    assert reg.get_group("weather") == WEATHER
    with pytest.raises(RegistryUnavailableError, match="is read-only here"):
        reg.apply([STORMS])
    assert reg.versions("feature_group", "storms") == []
    reg.close()


def test_an_unreachable_server_is_one_clear_error_without_the_password():
    dead = f"postgresql://fs:s3cret@127.0.0.1:{_closed_port()}/fs"
    reg = Registry(dead, lock_timeout_s=1)
    for call in (reg.list_groups, lambda: reg.apply([AIRPORT])):
        with pytest.raises(RegistryUnavailableError, match="cannot be reached") as exc:
            call()
        assert "s3cret" not in str(exc.value) and "fs:***@127.0.0.1" in str(exc.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_cli_uses_registry_url_with_an_env_password(url, tmp_path):
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE ROLE fs LOGIN PASSWORD 'pw-from-env'")
        con.execute("GRANT ALL ON SCHEMA public TO fs")
    conf = tmp_path / "conf.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\nregistry:\n  url: "
                    + url.replace("postgres@", "fs:${SPARKFS_TEST_PW}@", 1) + "\n")
    repo = tmp_path / "repo.py"
    repo.write_text("from sparkfs import Entity, FeatureGroup, Field\n"
                    "airport = Entity('airport', ['origin'])\n"
                    "weather = FeatureGroup('weather', [airport], 'time_hour', "
                    "[Field('temp', 'double')])\n")
    env = {"SPARKFS_TEST_PW": "pw-from-env", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    cli = "import sys; from sparkfs.cli import main; sys.exit(main())"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", cli, "--config", str(conf), *args],
                              capture_output=True, text=True, timeout=120, env=env)

    r = run("apply", str(repo))
    assert r.returncode == 0, r.stderr
    r = run("list")
    assert r.returncode == 0 and "weather" in r.stdout, r.stderr
    assert not (tmp_path / "data" / "registry.db").exists()   # nothing went to SQLite
    assert Registry(url).get_group("weather").name == "weather"


def test_the_service_sees_an_apply_made_elsewhere_and_survives_the_database_going_away(
        url, tmp_path):
    import datetime as dt

    import pyarrow as pa
    from fastapi.testclient import TestClient

    from sparkfs import FeatureStore
    from sparkfs.serving.app import create_app

    conf = tmp_path / "conf.yaml"
    conf.write_text(f"data_dir: {tmp_path / 'data'}\nregistry: {{url: '{url}', "
                    "lock_timeout_s: 1}\nserving: {registry_refresh_s: 0}\n")
    fs = FeatureStore.from_config(str(conf))
    fs.apply([AIRPORT, WEATHER])
    fs.online.write_batch(WEATHER, pa.table({
        "origin": ["JFK"], "temp": [39.0],
        "time_hour": [dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC)]}))
    client = TestClient(create_app(fs), raise_server_exceptions=False)
    body = {"features": ["weather:temp"], "entity_rows": [{"origin": "JFK"}]}
    r = client.post("/features", json=body)
    assert r.status_code == 200 and r.json()["results"][1]["values"] == [39.0], r.text
    # another host applies a new version: the service answers with it (no value yet: null)
    v2 = FeatureGroup("weather", [AIRPORT], "time_hour", [Field("temp", "double")], version=2)
    Registry(url).apply([v2])
    r = client.post("/features", json=body)
    assert r.status_code == 200 and r.json()["results"][1]["values"] == [None], r.text
    # the database goes away: the plan known before keeps serving
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as con:
        con.execute("ALTER DATABASE " + url.rsplit("/", 1)[1] + " ALLOW_CONNECTIONS false")
        con.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname=%s",
                    (url.rsplit("/", 1)[1],))
    fs.registry.close()
    r = client.post("/features", json=body)
    assert r.status_code == 200 and r.json()["results"][1]["values"] == [None], r.text
    assert client.get("/health").status_code == 200
    fs.close()


_USES_FIXTURE = """
from sparkfs.testing.postgres import postgres_server  # noqa: F401

def test_needs_postgres(postgres_server):
    pass
"""


@pytest.mark.parametrize("ci", ["true", ""])
def test_without_postgresql_the_tests_skip_with_a_reason_but_fail_under_ci(tmp_path, ci):
    (tmp_path / "test_pg_missing.py").write_text(_USES_FIXTURE)
    env = {**os.environ, "CI": ci, "SPARKFS_PG_BINDIR": str(tmp_path / "no-such-bin")}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        "-p", "no:sparkfs.testing.plugin", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert "PostgreSQL is not installed" in r.stdout, r.stdout + r.stderr
    if ci:
        assert r.returncode == 1 and "CI=true" in r.stdout and "1 error" in r.stdout
    else:
        assert r.returncode == 0 and "1 skipped" in r.stdout
