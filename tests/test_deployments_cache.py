"""The serving process's deployment cache (``Deployments(registry, max_age_s)``): a redeploy
made by another process becomes visible within ``max_age_s`` with the SQLite and the
PostgreSQL registry (where no file changes to tell), without a restart and without failing
a prediction in flight; within ``max_age_s`` a cached revision costs no registry read; an
unreadable registry keeps the cached revision serving. Real registries (a throw-away
PostgreSQL), real MLflow registry and SQLite online store in a temp dir; the redeploy runs
``fs.deploy`` in a second Python process. No Spark."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time

import pytest
import yaml
from deployed_weather import deploy_weather_model

from sparkfs import FeatureStore
from sparkfs.errors import RegistryUnavailableError
from sparkfs.inference.deployments import Deployments
from sparkfs.testing.postgres import postgres_server  # noqa: F401 (fixture)

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ROWS = [{"origin": "JFK"}]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    """A store with two versions of model ``m`` and deployment ``d`` serving version 1;
    the config file another process opens the same store with."""
    config: dict = {"project": "test", "data_dir": str(tmp_path / "data")}
    if request.param == "postgres":
        config["registry"] = {"url": request.getfixturevalue("postgres_server").database()}
    fs = FeatureStore(config)
    deploy_weather_model(fs, NOW, versions=2)
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump(config))
    yield fs, str(conf)
    fs.close()


def _deploy_elsewhere(conf: str, version: int) -> None:
    code = ("import sys; from sparkfs import FeatureStore; "
            "fs = FeatureStore.from_config(sys.argv[1]); "
            "fs.deploy('d', model='m', version=int(sys.argv[2])); fs.close()")
    out = subprocess.run([sys.executable, "-c", code, conf, str(version)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_redeploy_by_another_process_is_served_after_max_age_without_failing_a_request(store):
    fs, conf = store
    deps = fs.inference.deployments
    assert deps.max_age_s == 1.0  # the service's default
    assert fs.predict("d", ROWS).model_version == 1  # cached now
    versions: list[list[int]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop = threading.Event()

    def client(mine: list[int]) -> None:  # predictions in flight all along
        while not stop.is_set():
            try:
                mine.append(fs.predict("d", ROWS).model_version)
            except Exception as exc:  # noqa: BLE001 (any failure fails the test)
                failures.append(repr(exc))
            time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    try:
        _deploy_elsewhere(conf, 2)
        done = time.monotonic()
        seen = None
        while time.monotonic() - done < deps.max_age_s + 5:
            seen = deps.get("d")
            if seen.model_version == 2:
                break
            time.sleep(0.05)
        took = time.monotonic() - done
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert failures == []
    assert seen is not None and seen.model_version == 2 and seen.revision == 2
    assert took <= deps.max_age_s + 1.0  # within max_age (and a little scheduling slack)
    assert all(v and set(v) <= {1, 2} for v in versions)
    assert fs.predict("d", ROWS).model_version == 2
    for mine in versions:  # each client switched once: never back to the old version
        first_new = mine.index(2) if 2 in mine else len(mine)
        assert set(mine[first_new:]) <= {2}


class CountingRegistry:
    """The real registry, counting ``get`` calls and failing them on demand."""

    def __init__(self, registry) -> None:
        self.inner, self.path, self.gets, self.down = registry, registry.path, 0, False

    def get(self, *args, **kwargs):
        self.gets += 1
        if self.down:
            raise RegistryUnavailableError("registry x is locked by another process")
        return self.inner.get(*args, **kwargs)

    def list(self, *args, **kwargs):
        return self.inner.list(*args, **kwargs)


def test_a_cached_revision_costs_no_read_until_max_age_and_survives_an_unreadable_registry(
        store):
    fs, _ = store
    reg = CountingRegistry(fs.registry)
    deps = Deployments(reg, max_age_s=0.5)
    first = deps.get("d")
    for _ in range(100):
        assert deps.get("d") is first
    assert reg.gets == 1
    time.sleep(0.6)
    assert deps.get("d") is first  # re-read: the same revision, the same object
    assert reg.gets == 2
    reg.down = True
    time.sleep(0.6)
    assert deps.get("d") is first  # the registry cannot be read: the cached revision serves
    assert reg.gets == 3
    fresh = Deployments(reg, max_age_s=0.5)
    with pytest.raises(RegistryUnavailableError):  # nothing cached: the failure shows
        fresh.get("d")
