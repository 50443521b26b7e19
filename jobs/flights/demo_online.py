"""Online store: materialize weather and planes from Delta, read feature vectors

Materialization is incremental (only Delta commits after the stored watermark are read;
executors write partition by partition). Weather has a 2-day ttl and the data is from
2013, so read "now" every weather value is expired; the vectors are also read as of
2013-12-31 to show the values.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

from sparkfs.serving.online import get_online_features


def _latency_ms(fn, n: int = 200) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def run(fs, ctx: dict) -> None:
    for name in ("weather", "planes"):
        [r] = fs.materialize(name)
        print(f"materialize {name:<8} Delta {r.from_delta_version} -> {r.to_delta_version}: "
              f"{r.rows_read:>6} rows read, {r.keys_written:>5} keys written in {r.duration_s:.1f}s")
    [again] = fs.materialize("weather")
    print(f"materialize weather again: {again.rows_read} rows read, {again.keys_written} keys "
          f"written (watermark already at Delta version {again.to_delta_version})")

    features = ["weather:temp", "weather:wind_speed", "weather:visib",
                "planes:manufacturer", "planes:seats", "planes:year_built"]
    rows = [{"origin": "JFK", "tailnum": "N14228"}, {"origin": "EWR", "tailnum": "N24211"},
            {"origin": "LGA", "tailnum": "N0000X"}]
    end_2013 = dt.datetime(2013, 12, 31, 12, tzinfo=dt.UTC)
    resp = get_online_features(fs.catalog, fs.online, features, rows, now=end_2013)
    df = resp.to_pandas(include_status=False)
    df["weather_at"] = [t.strftime("%Y-%m-%d %H:%M") if t else None
                        for t in resp.event_times["temp"]]
    print("online vectors as of 2013-12-31 12:00 UTC:")
    print(df.to_string(index=False))
    statuses = fs.get_online_features(["weather:temp", "planes:seats"], rows[:2]) \
        .to_dict(include_status=True)
    print(f"read now: weather:temp {statuses['temp__status']} (ttl 2d), "
          f"planes:seats {statuses['seats__status']} (no ttl)")

    one = [{"origin": "JFK", "tailnum": "N14228"}]
    p50, p99 = _latency_ms(lambda: fs.get_online_features(features, one))
    print(f"read latency, 1 entity x 6 features from 2 groups: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    many = [{"origin": ("JFK", "EWR", "LGA")[i % 3], "tailnum": f"N{i}"} for i in range(500)]
    p50, p99 = _latency_ms(lambda: fs.get_online_features(features, many), n=50)
    print(f"read latency, 500 entities x 6 features: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    ctx["online"] = {"materialized": ["weather", "planes"], "p99_ms_batch500": p99}
