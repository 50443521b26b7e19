"""Lineage up and down on a store built here (two model versions on two training-set
versions, a feature used by two views), the CLI, and OpenLineage export to a file and to
a real local HTTP receiver, validated by rebuilding them with the openlineage client's own event classes."""

from __future__ import annotations

import http.server
import json
import threading

import pandas as pd
import pytest

from sparkfs import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from sparkfs.cli import main
from sparkfs.errors import NotFoundError, SparkfsError
from sparkfs.lineage.openlineage import LineageExportError, emit

T0 = pd.Timestamp("2013-01-01", tz="UTC")
airport = Entity("airport", join_keys=["origin"])
plane = Entity("plane", join_keys=["tailnum"])


def hours(h):
    return T0 + pd.Timedelta(hours=h)


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    from sklearn.linear_model import LinearRegression

    root = tmp_path_factory.mktemp("lineage")
    fs = FeatureStore({"project": "test", "data_dir": str(root / "data")}, spark=spark)
    weather = FeatureGroup("weather", [airport], "time_hour",
                           [Field("temp", "double"), Field("wind", "double")])
    planes = FeatureGroup("planes", [plane], "t", [Field("seats", "int")])
    fs.apply([weather, planes,
              FeatureView("delay", features=["weather:temp", "weather:wind"]),
              FeatureView("arrival", features=["weather:temp", "planes:seats"])])
    fs.ingest("weather", pd.DataFrame({"origin": ["JFK", "LGA"], "time_hour": [hours(0)] * 2,
                                       "temp": [30.0, None], "wind": [5.0, 7.0]}), run_id="w1")
    fs.ingest("planes", pd.DataFrame({"tailnum": ["N1"], "t": [hours(0)], "seats": [150]}),
              run_id="p1")
    spine = pd.DataFrame({"origin": ["JFK", "LGA", "JFK"], "tailnum": ["N1", "N1", "N2"],
                          "ts": [hours(1), hours(2), hours(3)], "y": [1.0, 2.0, 4.0]})
    ts1 = fs.create_training_set("delays", spine, view="delay", timestamp_col="ts",
                                 engine="duckdb")
    fs.create_training_set("arrivals", spine, view="arrival", timestamp_col="ts",
                           engine="duckdb")
    fs.ingest("weather", pd.DataFrame({"origin": ["JFK"], "time_hour": [hours(2)],
                                       "temp": [31.0], "wind": [6.0]}), run_id="w2")
    ts2 = fs.create_training_set("delays", spine, view="delay", timestamp_col="ts",
                                 engine="duckdb")
    for ts in (ts1, ts2):
        data = ts.to_pandas().fillna(0.0)
        model = LinearRegression().fit(data[["temp", "wind"]], data["y"])
        fs.log_model(model, "delay_model", training_set=f"delays@{ts.version}")
    fs.deploy("delay", model="delay_model", version=2)
    config = root / "sparkfs.yaml"
    config.write_text(f"project: test\ndata_dir: {root / 'data'}\n")
    yield fs, str(config)
    fs.close()


def test_up_from_model_reaches_its_training_set_view_groups_and_only_the_runs_it_read(store):
    fs, _ = store
    up1 = fs.lineage("model:delay_model@1")
    assert up1.root == "model:delay_model@1"
    assert up1.ids("training_set") == ["training_set:delays@1"]
    assert up1.ids("view") == ["view:delay@1"]
    assert up1.ids("feature") == ["feature:weather@1:temp", "feature:weather@1:wind"]
    assert up1.ids("group") == ["group:weather@1"]
    assert up1.ids("delta") == ["delta:weather@1:v0", "delta:weather@1:v1"]
    assert up1.ids("run") == ["run:weather@1/w1"]  # w2 came after training set delays@1
    assert "planes" not in up1.to_json()
    ts_node = up1.nodes["training_set:delays@1"]
    assert ts_node.attrs["delta_versions"] == {"weather@1": 1}
    assert up1.nodes["run:weather@1/w1"].attrs["delta_version"] == 1
    assert up1.nodes["run:weather@1/w1"].attrs["rows"] == 2

    up2 = fs.lineage("model:delay_model")  # no version: the latest
    assert up2.root == "model:delay_model@2"
    assert up2.ids("training_set") == ["training_set:delays@2"]
    assert up2.ids("run") == ["run:weather@1/w1", "run:weather@1/w2"]
    assert up2.nodes["training_set:delays@2"].attrs["delta_versions"] == {"weather@1": 2}

    dep = fs.lineage("deployment:delay")
    assert dep.ids("model") == ["model:delay_model@2"]
    assert "training_set:delays@1" not in dep.nodes


def test_down_from_a_feature_used_by_two_views(store):
    fs, _ = store
    down = fs.lineage("feature:weather:temp", direction="down")
    assert down.ids("view") == ["view:arrival@1", "view:delay@1"]
    assert down.ids("training_set") == ["training_set:arrivals@1", "training_set:delays@1",
                                        "training_set:delays@2"]
    assert down.ids("model") == ["model:delay_model@1", "model:delay_model@2"]
    assert down.ids("deployment") == ["deployment:delay"]
    seats = fs.lineage("feature:planes:seats", direction="down")
    assert seats.ids("view") == ["view:arrival@1"]
    assert seats.ids("training_set") == ["training_set:arrivals@1"]
    assert seats.ids("model") == [] and seats.ids("deployment") == []
    # a group's new Delta version only feeds the training sets that read it
    assert fs.lineage("delta:weather@1:v2", "down").ids("model") == ["model:delay_model@2"]


def test_depth_both_and_output_forms(store):
    fs, _ = store
    one = fs.lineage("model:delay_model@2", depth=1)
    assert sorted(one.nodes) == ["model:delay_model@2", "training_set:delays@2"]
    both = fs.lineage("training_set:delays@2", direction="both", depth=1)
    assert both.ids("model") == ["model:delay_model@2"] and both.ids("view") == ["view:delay@1"]
    d = json.loads(both.to_json())
    assert d["format"] == 1 and d["root"] == "training_set:delays@2"
    assert d["direction"] == "both" and d["depth"] == 1
    assert {e["relation"] for e in d["edges"]} == {"built", "read_by", "trained"}
    assert [n["id"] for n in d["nodes"]] == sorted(n["id"] for n in d["nodes"])
    dot = both.to_dot()
    assert dot.startswith("digraph lineage {") and '"view:delay@1" -> "training_set:delays@2"' in dot
    text = str(fs.lineage("model:delay_model@1"))
    assert text.splitlines()[0] == "model:delay_model@1"
    assert "  <- training_set:delays@1 (trained)" in text


def test_bad_nodes_and_arguments_are_refused_with_close_matches(store):
    fs, _ = store
    with pytest.raises(NotFoundError, match=r"model:delay_modl@1.*close matches.*"
                                            r"model:delay_model@1"):
        fs.lineage("model:delay_modl@1")
    with pytest.raises(NotFoundError, match="malformed"):
        fs.lineage("delay_model")
    with pytest.raises(NotFoundError, match="feature:weather:pressure"):
        fs.lineage("feature:weather:pressure")
    with pytest.raises(SparkfsError, match="direction 'sideways'"):
        fs.lineage("model:delay_model@1", direction="sideways")
    with pytest.raises(SparkfsError, match="depth"):
        fs.lineage("model:delay_model@1", depth=-1)


def test_cli_lineage_formats_and_errors(store, capsys):
    _, config = store
    assert main(["--config", config, "lineage", "feature:weather:temp", "--down",
                 "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "deployment:delay" in [n["id"] for n in out["nodes"]]
    assert main(["--config", config, "lineage", "model:delay_model@1"]) == 0
    assert capsys.readouterr().out.startswith("model:delay_model@1\n")
    assert main(["--config", config, "lineage", "model:nope@1"]) == 2
    assert "lineage node 'model:nope@1' does not exist" in capsys.readouterr().err


def _check_event(e: dict) -> None:
    """Rebuild an emitted event with the client's classes: their validators check the run
    id (UUID), the event time (ISO 8601), the producer and schema URLs."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )

    rebuilt = RunEvent(
        eventType=RunState(e["eventType"]), eventTime=e["eventTime"],
        run=Run(runId=e["run"]["runId"]),
        job=Job(namespace=e["job"]["namespace"], name=e["job"]["name"]), producer=e["producer"],
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in e["inputs"]],
        outputs=[OutputDataset(namespace=d["namespace"], name=d["name"]) for d in e["outputs"]])
    assert e["schemaURL"] == rebuilt.schemaURL
    assert e["schemaURL"].startswith("https://openlineage.io/spec/")


def test_openlineage_events_to_a_file(store, tmp_path):
    fs, config = store
    path = tmp_path / "events.jsonl"
    assert main(["--config", config, "lineage-export", "--file", str(path)]) == 0
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for e in events:
        _check_event(e)
    jobs = sorted(e["job"]["name"] for e in events)
    assert jobs == ["deploy.delay", "ingest.planes@1", "ingest.weather@1", "ingest.weather@1",
                    "log_model.delay_model", "log_model.delay_model", "training_set.arrivals",
                    "training_set.delays", "training_set.delays"]
    ts2 = [e for e in events if e["job"]["name"] == "training_set.delays"
           and e["outputs"][0]["name"] == "training_set/delays@2"][0]
    assert ts2["inputs"][0]["name"] == "feature_group/weather@1"
    assert ts2["inputs"][0]["facets"]["version"]["datasetVersion"] == "2"
    assert len({e["run"]["runId"] for e in events}) == len(events)
    # the same history gives the same run ids
    assert [e.run.runId for e in fs.lineage_events()] == [
        e.run.runId for e in fs.lineage_events()]


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append((self.path, json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_openlineage_events_to_a_real_http_receiver(store):
    fs, _ = store
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        _Receiver.bodies, _Receiver.status = [], 200
        events = fs.lineage_events(namespace="flights")
        assert emit(events, {"type": "http", "url": url}) == len(events) == 9
        assert [p for p, _ in _Receiver.bodies] == ["/api/v1/lineage"] * 9
        for _, e in _Receiver.bodies:
            _check_event(e)
            assert e["job"]["namespace"] == "flights"
        _Receiver.bodies, _Receiver.status = [], 400
        with pytest.raises(LineageExportError, match="http transport failed after 0 of 9"):
            emit(events, {"type": "http", "url": url})
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(LineageExportError, match="give type 'file'"):
        emit([], {"type": "carrier-pigeon"})
