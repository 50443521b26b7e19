"""The Feast half of ``bench/inference.py``'s two-hop peer, run by a Python that has Feast.

Feast 0.67 pins ``prometheus_client<0.25`` while sparkfs pins 0.26, so it cannot share the
project's environment: ``bench/inference.py --feast-python PATH`` runs this file with
that interpreter. It writes a Feast repo (SQLite registry and online store, a file
source over the bench's weather history), applies the same features sparkfs serves (a
``weather`` feature view and an on-demand ``hour_of_day`` from a request field, the
flights repo's ``dep_calendar`` logic) and materializes them. ``bench/inference.py`` then
starts ``feast serve`` on that repo.

    feast-python bench/inference_feast.py REPO_DIR HISTORY_PARQUET
"""

import datetime as dt
import os
import sys

import pandas as pd  # at module level: Feast evaluates the transform's annotations


def main(repo: str, history: str) -> int:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RequestSource
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Float64, Int64
    from feast.value_type import ValueType

    os.makedirs(repo, exist_ok=True)
    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        f.write(f"project: bench\nregistry: {repo}/registry.db\nprovider: local\n"
                f"online_store:\n  type: sqlite\n  path: {repo}/online.db\n"
                "offline_store:\n  type: file\nentity_key_serialization_version: 3\n")
    airport = Entity(name="airport", join_keys=["origin"], value_type=ValueType.STRING)
    source = FileSource(path=history, timestamp_field="time_hour")
    weather = FeatureView(name="weather", entities=[airport], ttl=dt.timedelta(days=3650),
                          schema=[Field(name="temp", dtype=Float64),
                                  Field(name="wind", dtype=Float64)],
                          source=source, online=True)
    request = RequestSource(name="flight", schema=[Field(name="sched_dep_epoch", dtype=Int64)])

    @on_demand_feature_view(sources=[request], schema=[Field(name="hour_of_day", dtype=Int64)],
                            mode="pandas")
    def dep_calendar(inputs: pd.DataFrame) -> pd.DataFrame:
        t = pd.to_datetime(inputs["sched_dep_epoch"], unit="s", utc=True)
        return pd.DataFrame({"hour_of_day":
                             t.dt.tz_convert("America/New_York").dt.hour.astype("int64")})

    store = FeatureStore(repo_path=repo)
    store.apply([airport, weather, dep_calendar])
    frame = pd.read_parquet(history)
    store.materialize(frame.time_hour.min().to_pydatetime() - dt.timedelta(seconds=1),
                      frame.time_hour.max().to_pydatetime() + dt.timedelta(seconds=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
