"""Parsing message payloads (Kafka values, lines of JSON files) into a group's columns,
with a reason for every payload that cannot be parsed.

Each payload is parsed twice by Spark's ``from_json``: once with the group's types and
once with every field as text. A field is **missing** when the JSON object lacks it (or
gives null for a join key or the event time), and has the **wrong type** when its text is
there but the typed parse gave null. A payload that is not a JSON object is refused whole.
Feature fields may be JSON null (a missing value); ``NaN``/``Infinity`` tokens (as Python's
``json.dumps`` writes them) and ``"NaN"``/``"Infinity"`` strings are read as those floats,
so NaN and null land as they do in a batch ingest. Timestamps are ISO-8601 strings (UTC
unless an offset is given) or epoch seconds.

Avro payloads (``parse_avro``) are decoded by Spark's ``from_avro`` with the group's Avro
schema (``avro_schema``) or one given, and refused with the same kinds of reasons.

The result has the group's input columns plus ``_sparkfs_raw`` (the payload) and
``_sparkfs_error`` (null, or why it was refused); ``split`` separates the two kinds.

>>> required_fields(_demo())
['k', 't', 'x']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..definitions import FeatureGroup
from ..dtypes import ALL, spark_type

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame

RAW = "_sparkfs_raw"
ERROR = "_sparkfs_error"
ORIGIN = "_sparkfs_origin"
#: Columns of the quarantine table for unparseable payloads.
Q_RAW, Q_REASON, Q_ORIGIN = "_raw_payload", "_reason", "_origin"


def required_fields(group: FeatureGroup) -> list[str]:
    """The JSON fields every payload must carry: join keys, event time, input fields."""
    return list(group.join_keys) + [group.event_time] + [f.name for f in group.input_fields]


def input_schema(group: FeatureGroup):
    """The Spark schema of the payload: keys, event time (timestamp) and input fields."""
    from pyspark.sql.types import StructType

    dtypes = group.column_dtypes
    return StructType.fromDDL(", ".join(f"`{n}` {spark_type(dtypes[n])}"
                                        for n in required_fields(group)))


def parse_json(payload: Column, group: FeatureGroup, origin: Column | None = None) -> list[Column]:
    """Columns to ``select`` from a frame holding the payload text: the parsed input
    columns, ``_sparkfs_raw``, ``_sparkfs_error`` and ``_sparkfs_origin``."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = input_schema(group)
    text_schema = T.StructType([T.StructField(f.name, T.StringType()) for f in schema.fields])
    typed = F.from_json(payload, schema, {"mode": "PERMISSIVE"})
    text = F.from_json(payload, text_schema, {"mode": "PERMISSIVE"})
    # the keys of the object; not json_object_keys, which calls a payload with a NaN or
    # Infinity token (Python's json.dumps writes them) "not JSON" while from_json reads it
    present = F.map_keys(F.from_json(payload, "map<string,string>", {"mode": "PERMISSIVE"}))
    must_be_set = set(group.join_keys) | {group.event_time}
    missing, wrong = [], []
    for f in schema.fields:
        absent = ~F.array_contains(present, F.lit(f.name))
        if f.name in must_be_set:
            absent = absent | text[f.name].isNull()
        missing.append(F.when(absent, F.lit(f.name)))
        wrong.append(F.when(~absent & text[f.name].isNotNull() & typed[f.name].isNull(),
                            F.lit(f"{f.name} ({f.dataType.simpleString()})")))
    missing_s, wrong_s = F.concat_ws(", ", *missing), F.concat_ws(", ", *wrong)
    reason = F.when(present.isNull(), F.lit("not a JSON object")).otherwise(
        F.nullif(F.concat_ws("; ",
                             F.when(missing_s != "", F.concat(F.lit("missing field(s): "), missing_s)),
                             F.when(wrong_s != "", F.concat(F.lit("wrong type for field(s): "), wrong_s))),
                 F.lit("")))
    return ([typed[f.name].alias(f.name) for f in schema.fields]
            + [payload.alias(RAW), reason.alias(ERROR),
               (origin if origin is not None else F.lit(None).cast("string")).alias(ORIGIN)])


#: Avro types of sparkfs dtypes (timestamps: microseconds since the epoch, UTC).
AVRO_TYPES: dict[str, Any] = {n: d.avro for n, d in ALL.items()}


def avro_schema(group: FeatureGroup) -> str:
    """The Avro schema (JSON text) of ``group``'s payloads: a record of the join keys and
    the event time (required) and the input fields (each nullable: ``["null", type]``).
    Producers may write with it; ``kafka_source(value_format="avro")`` reads with it
    unless given another.

    >>> import json
    >>> [f["name"] for f in json.loads(avro_schema(_demo()))["fields"]]
    ['k', 't', 'x']
    >>> json.loads(avro_schema(_demo()))["fields"][2]["type"]
    ['null', 'double']
    """
    import json

    dtypes = dict(group.key_dtypes)
    dtypes[group.event_time] = "timestamp"
    fields = [{"name": n, "type": AVRO_TYPES[dtypes[n]]} for n in [*group.join_keys, group.event_time]]
    fields += [{"name": f.name, "type": ["null", AVRO_TYPES[f.dtype]], "default": None}
               for f in group.input_fields]
    return json.dumps({"type": "record", "name": group.name, "namespace": "sparkfs",
                       "fields": fields})


def parse_avro(payload: Column, group: FeatureGroup, schema: str | None = None,
               origin: Column | None = None, confluent: bool = False) -> list[Column]:
    """Like ``parse_json`` for Avro binary payloads decoded with Spark's ``from_avro`` and
    ``schema`` (default ``avro_schema(group)``): plain Avro, or with ``confluent`` the
    Confluent wire format (magic byte 0, a 4-byte schema id, then the Avro record) that
    Schema-Registry serializers write; the header is checked and stripped, the record is
    decoded with ``schema`` (the id is not looked up: pass the schema it names).
    A payload that does not decode (or decodes to nothing but nulls) is refused whole; a
    null join key or event time is a missing field; a field whose Avro value does not cast
    to the group's type has the wrong type. ``_sparkfs_raw`` holds the payload in base64.
    A schema that lacks a field the group needs is refused before the stream starts."""
    import json

    from pyspark.sql import functions as F

    from ..errors import ConfigError

    schema = schema or avro_schema(group)
    try:
        declared = {f["name"] for f in json.loads(schema)["fields"]}
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"the Avro schema for feature group {group.name!r} is not a JSON "
                          "Avro record schema") from None
    lacking = [n for n in required_fields(group) if n not in declared]
    if lacking:
        raise ConfigError(f"the Avro schema for feature group {group.name!r} lacks field(s) "
                          f"{lacking}; every payload must carry the join keys, the event time "
                          "and the input fields")
    framed = F.lit(True)
    body = payload
    if confluent:  # magic byte 0x00 + 4-byte schema id, then the record
        framed = (F.length(payload) > 5) & (F.hex(F.substring(payload, 1, 1)) == F.lit("00"))
        body = F.when(framed, F.substring(payload, 6, 2_147_483_647))
    try:
        from pyspark.sql.avro.functions import from_avro

        decoded = from_avro(body, schema, {"mode": "PERMISSIVE"})
    except Exception as exc:  # the JVM side is missing: py4j/TypeError, not ours to name
        raise ConfigError("Spark's Avro functions (spark-avro) are not on this session's "
                          "classpath: start Spark with spark.jars = sparkfs.jvm.jars('spark-kafka') "
                          f"(`python -m sparkfs.jvm fetch spark-kafka`): {str(exc).splitlines()[0]}"
                          ) from None
    target = input_schema(group)
    must_be_set = set(group.join_keys) | {group.event_time}
    missing, wrong, cols = [], [], []
    for f in target.fields:
        raw = decoded[f.name]
        typed = raw.cast(f.dataType)
        cols.append(typed.alias(f.name))
        if f.name in must_be_set:
            missing.append(F.when(raw.isNull(), F.lit(f.name)))
        wrong.append(F.when(raw.isNotNull() & typed.isNull(),
                            F.lit(f"{f.name} ({f.dataType.simpleString()})")))
    missing_s, wrong_s = F.concat_ws(", ", *missing), F.concat_ws(", ", *wrong)
    # PERMISSIVE from_avro gives a record of nulls (not a null) for bytes it cannot decode
    undecoded = decoded.isNull()
    all_null = F.lit(True)
    for f in target.fields:
        all_null = all_null & decoded[f.name].isNull()
    reason = F.when(~framed, F.lit("no Confluent wire-format header (magic byte 0 and a "
                                   "schema id)")).when(
        undecoded | all_null, F.lit("not a valid Avro record for the schema")).otherwise(
        F.nullif(F.concat_ws("; ",
                             F.when(missing_s != "", F.concat(F.lit("missing field(s): "), missing_s)),
                             F.when(wrong_s != "", F.concat(F.lit("wrong type for field(s): "), wrong_s))),
                 F.lit("")))
    return (cols + [F.base64(payload).alias(RAW), reason.alias(ERROR),
                    (origin if origin is not None else F.lit(None).cast("string")).alias(ORIGIN)])


#: dtypes ``parse_json_arrow`` reads; a group with another input dtype is parsed by Spark.
ARROW_JSON_DTYPES = frozenset({"boolean", "int", "long", "double", "string", "timestamp"})
#: The timestamp strings ``parse_json_arrow`` reads (others: Spark judges the batch).
_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?$"
_ZONED = r"(Z|[+-]\d{2}:\d{2})$"


def arrow_parsable(group: FeatureGroup) -> bool:
    """True when every field a payload carries has a dtype ``parse_json_arrow`` reads.

    >>> arrow_parsable(_demo())
    True
    """
    dtypes = group.column_dtypes
    return all(dtypes[n] in ARROW_JSON_DTYPES for n in required_fields(group))


def parse_json_arrow(payloads: Any, origins: Any, group: FeatureGroup,
                     naive_is_utc: bool = True) -> Any:
    """``parse_json`` in this process, vectorised with pyarrow, for a batch collected to
    the driver: the same table Spark's ``parse_json`` columns give (input columns in the
    group's Arrow types, ``_sparkfs_raw``, ``_sparkfs_error``, ``_sparkfs_origin``) when
    every payload is a clean, one-line JSON object that Spark would read to the same
    values; None as soon as one is not (malformed, a missing field, a null key or event
    time, a value of another JSON type, a duplicate field, a timestamp that is not plain
    ISO-8601, or a zone-less one when ``naive_is_utc`` is False, i.e. the session's time
    zone is not UTC): then Spark parses the batch and names each refusal, as before.

    ``payloads`` and ``origins`` are Arrow string arrays of one row per message.
    JSON ``NaN``/``Infinity`` tokens are read as floats; a JSON null feature is a missing
    value; a field the object lacks is told from a null by reading the rows with a null
    feature once more with ``json``.

    >>> import pyarrow as pa
    >>> t = parse_json_arrow(pa.array(['{"k": "a", "t": "2013-01-01T05:00:00Z", "x": NaN}',
    ...                                '{"k": "b", "t": "2013-01-01 06:00:00", "x": null}']),
    ...                      pa.array(["t/0/0", "t/0/1"]), _demo())
    >>> t.column("x").to_pylist(), t.column(ERROR).null_count
    ([nan, None], 2)
    >>> parse_json_arrow(pa.array(['{"k": "a", "t": "2013-01-01T05:00:00Z"}']),
    ...                  pa.array(["t/0/0"]), _demo()) is None  # x is missing: Spark says so
    True
    """
    import io
    import json

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    from ..dtypes import arrow_type

    payloads = payloads.combine_chunks() if isinstance(payloads, pa.ChunkedArray) else payloads
    n = len(payloads)
    fields = required_fields(group)
    dtypes = group.column_dtypes
    if n == 0 or payloads.null_count or pc.any(pc.match_substring_regex(payloads, r"[\r\n]")).as_py():
        return None
    # timestamps are read as text and converted below (Arrow's JSON reader does not)
    read_as = pa.schema([(f, pa.string() if dtypes[f] == "timestamp" else arrow_type(dtypes[f]))
                         for f in fields])
    text = "\n".join(payloads.to_pylist()).encode()
    try:
        table = pj.read_json(io.BytesIO(text), read_options=pj.ReadOptions(use_threads=False),
                             parse_options=pj.ParseOptions(explicit_schema=read_as,
                                                           unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != n:
        return None
    must_be_set = set(group.join_keys) | {group.event_time}
    columns = []
    nullable_rows = None
    for f in fields:
        col = table.column(f)
        if col.null_count:
            if f in must_be_set:
                return None
            rows = pc.is_null(col)
            nullable_rows = rows if nullable_rows is None else pc.or_(nullable_rows, rows)
        if dtypes[f] == "timestamp":
            col = _timestamps(col, naive_is_utc)
            if col is None:
                return None
        columns.append(col.cast(arrow_type(dtypes[f])))
    if nullable_rows is not None:  # null or absent? Spark refuses an absent field
        for i in pc.indices_nonzero(nullable_rows).to_pylist():
            try:
                obj = json.loads(payloads[i].as_py(), object_pairs_hook=_pairs)
            except ValueError:
                return None
            if not isinstance(obj, dict) or any(f not in obj for f in fields):
                return None
    return pa.table(columns + [payloads, pa.nulls(n, pa.string()), origins],
                    names=fields + [RAW, ERROR, ORIGIN])


def _pairs(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate field")
    return out


def _timestamps(col: Any, naive_is_utc: bool) -> Any:
    """Plain ISO-8601 strings as UTC timestamps (zone-less ones as UTC when
    ``naive_is_utc``); None when one is not of that form or not a valid time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    valid = col.drop_null()
    if not pc.all(pc.match_substring_regex(valid, _ISO)).as_py():
        return None
    zoned = pc.match_substring_regex(col, _ZONED)
    utc = pa.timestamp("us", "UTC")
    try:
        if pc.all(pc.fill_null(zoned, True)).as_py():
            return col.cast(utc)
        if not naive_is_utc:
            return None
        if not pc.any(zoned).as_py():
            return col.cast(pa.timestamp("us")).cast(utc)
        out = [pa.array([v]).cast(utc if z else pa.timestamp("us")).cast(utc)[0].as_py()
               if v is not None else None
               for v, z in zip(col.to_pylist(), zoned.to_pylist())]
        return pa.array(out, utc)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def split(batch: DataFrame) -> tuple[DataFrame, DataFrame | None]:
    """(parsed rows without the parse columns, unparseable rows shaped for quarantine);
    a frame without parse columns is returned as is, with None."""
    from pyspark.sql import functions as F

    if ERROR not in batch.columns:
        return batch, None
    good = batch.where(F.col(ERROR).isNull()).drop(RAW, ERROR, ORIGIN)
    bad = batch.where(F.col(ERROR).isNotNull()).select(
        F.col(RAW).alias(Q_RAW), F.col(ERROR).alias(Q_REASON), F.col(ORIGIN).alias(Q_ORIGIN))
    return good, bad


def split_arrow(batch: Any) -> tuple[Any, Any]:
    """``split`` for a micro-batch collected to the driver as a pyarrow Table: (parsed
    rows, unparseable rows shaped for quarantine, or None when there are none).

    >>> import pyarrow as pa
    >>> t = pa.table({"k": ["a", None], RAW: ["{...}", "oops"], ERROR: [None, "not JSON"],
    ...               ORIGIN: [None, None]})
    >>> good, bad = split_arrow(t)
    >>> good.column_names, good.num_rows, bad.column(Q_REASON).to_pylist()
    (['k'], 1, ['not JSON'])
    """
    import pyarrow.compute as pc

    if ERROR not in batch.column_names:
        return batch, None
    refused = pc.is_valid(batch.column(ERROR))
    good = batch.filter(pc.invert(refused)).drop_columns([RAW, ERROR, ORIGIN])
    bad = batch.filter(refused)
    if bad.num_rows == 0:
        return good, None
    bad = bad.select([RAW, ERROR, ORIGIN]).rename_columns([Q_RAW, Q_REASON, Q_ORIGIN])
    return good, bad


def _demo() -> FeatureGroup:
    from ..definitions import Entity, Field

    return FeatureGroup(name="w", entities=[Entity("a", join_keys=["k"])], event_time="t",
                        schema=[Field("x", "double")])
