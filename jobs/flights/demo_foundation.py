"""Feature pipelines: apply the flights repo, ingest with Spark into Delta, time travel

Weather is ingested in two monthly-range batches (two Delta commits) so the time-travel
read has something to show; planes in one batch; then the first batch is re-run with the
same run id (a no-op) and replayed under a new one (every row skipped).
"""

from __future__ import annotations

import time

from jobs.flights import data, features
from sparkfs.repo import definitions_in


def run(fs, ctx: dict) -> None:
    spark = fs.spark
    t = time.perf_counter()
    applied = fs.apply(definitions_in(features))
    print(f"applied {len(applied.created)} definitions: {', '.join(applied.created)}")

    weather = data.weather_frame()
    first = weather[weather["time_hour"] < "2013-07-01"]
    second = weather[weather["time_hour"] >= "2013-07-01"]
    planes = data.planes_frame()
    results = {}
    for label, group, frame, run_id in [
        ("weather Jan-Jun", "weather", first, "weather-2013-h1"),
        ("weather Jul-Dec", "weather", second, "weather-2013-h2"),
        ("planes", "planes", planes, "planes-2013"),
    ]:
        sdf = spark.createDataFrame(frame)
        r = fs.ingest(group, sdf, run_id=run_id)
        results[label] = r
        print(f"ingest {label:<16} rows={r.rows_written:>6}  delta_version={r.delta_version}  "
              f"{r.rows_written / r.duration_s:>9,.0f} rows/s  ({r.duration_s:.1f}s)")
    ctx["ingest"] = results

    again = fs.ingest("weather", spark.createDataFrame(first), run_id="weather-2013-h1")
    print(f"re-run same run id      -> noop={again.noop}, rows_written={again.rows_written} "
          f"({again.duration_s:.2f}s)")
    replay = fs.ingest("weather", spark.createDataFrame(first), run_id="weather-2013-h1-replay")
    print(f"replay, new run id      -> rows_written={replay.rows_written}, "
          f"rows_skipped={replay.rows_skipped} ({replay.duration_s:.1f}s)")

    v1 = fs.read_history("weather", version=results["weather Jan-Jun"].delta_version)
    now = fs.read_history("weather")
    print(f"time travel: weather at Delta version {v1.delta_version} has "
          f"{v1.to_arrow().num_rows} rows; latest (version {now.delta_version}) has "
          f"{now.to_arrow().num_rows} rows (read with delta-rs, no Spark)")
    jfk = now.to_pandas().query("origin == 'JFK'").sort_values("time_hour").tail(3)
    print("latest JFK weather rows:")
    print(jfk[["origin", "time_hour", "temp", "wind_speed", "visib"]].to_string(index=False))
    print(f"feature pipelines took {time.perf_counter() - t:.1f}s")
