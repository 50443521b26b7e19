"""Data quality: great-expectations on ingest (quarantine), statistics with an HTML report, drift, search

``flight_facts`` declares its suite in ``conf/expectations/flight_facts.json`` and the
``quarantine`` policy. Week 1 of January 2013 is ingested as it is (the real data has a
few flights without a tail number); week 2 is deliberately broken (negative distances,
removed tail numbers). Failing rows go to the quarantine Delta table; the rest is written.
"""

from __future__ import annotations

import os
import time

import numpy as np

from jobs.flights import data

REPORT = os.path.join(".sparkfs", "reports", "flight_facts.html")


def run(fs, ctx: dict) -> None:
    from sparkfs.validation import FAILED_COLUMN, read_quarantine

    spark = fs.spark
    t0 = time.perf_counter()
    flights = data.flights_frame()
    cols = ["flight_id", "sched_dep_ts", "carrier", "tailnum", "origin", "dest", "distance",
            "air_time", "dep_delay"]
    week1 = flights[flights["sched_dep_ts"] < "2013-01-08"][cols].reset_index(drop=True)
    week2 = flights[(flights["sched_dep_ts"] >= "2013-01-08")
                    & (flights["sched_dep_ts"] < "2013-01-15")][cols].reset_index(drop=True)
    rng = np.random.default_rng(7)
    broken_dist = rng.choice(len(week2), 40, replace=False)
    broken_tail = rng.choice(len(week2), 25, replace=False)
    week2.loc[broken_dist, "distance"] = -week2.loc[broken_dist, "distance"]
    week2.loc[broken_tail, "tailnum"] = None
    print(f"week 1: {len(week1)} real rows ({int(week1['tailnum'].isna().sum())} without a tail "
          f"number in the source); week 2: {len(week2)} rows, broke {len(broken_dist)} distances "
          f"and {len(broken_tail)} tail numbers")

    results = {}
    for label, frame, run_id in (("week 1", week1, "facts-2013-w1"),
                                 ("week 2 (broken)", week2, "facts-2013-w2")):
        r = fs.ingest("flight_facts", spark.createDataFrame(frame), run_id=run_id)
        results[label] = r
        print(f"ingest {label:<16} in={len(frame):>5}  written={r.rows_written:>5}  "
              f"quarantined={r.rows_quarantined:>3}  skipped={r.rows_skipped}  "
              f"delta_version={r.delta_version}  ({r.duration_s:.1f}s)")
        assert r.rows_written + r.rows_quarantined + r.rows_skipped == len(frame)

    print("\n$ sparkfs validation-report flight_facts")
    report = fs.validation_report("flight_facts")
    print(report)

    q = read_quarantine(fs.offline, fs.get_feature_group("flight_facts")).to_pandas()
    q = q[q["_run_id"] == "facts-2013-w2"]
    print(f"\nquarantine table {fs.offline.quarantine_uri(fs.get_feature_group('flight_facts'))}: "
          f"{len(q)} rows from week 2, e.g.")
    sample = q.sort_values("flight_id").head(4)
    for row in sample.to_dict("records"):
        print(f"  {row['flight_id']:<24} tailnum={row['tailnum']!s:<7} "
              f"distance={row['distance']:>7.0f}  failed: {', '.join(row[FAILED_COLUMN])}")

    stats = fs.statistics("flight_facts")
    print(f"\n$ sparkfs stats flight_facts --html {REPORT}")
    print(stats)
    from sparkfs.monitoring import write_html

    write_html(stats, REPORT, fs.get_feature_group("flight_facts"))
    print(f"wrote {REPORT} (one histogram per numeric feature)")

    print("\n$ sparkfs monitor flight_facts --baseline 1 --versions 2")
    drift = fs.monitor("flight_facts", baseline=1, versions=2)
    print(drift)

    print('\n$ sparkfs search "delay"')
    print(fs.search("delay"))
    ctx["quality"] = {"ingest": results, "report": report, "drift": drift,
                      "html": REPORT}
    print(f"\nquality section took {time.perf_counter() - t0:.1f}s")
