"""Parsing message payloads (Kafka values, lines of JSON files) into a group's columns,
with a reason for every payload that cannot be parsed.

Each payload is parsed by Spark's ``from_json`` three times: with the group's types, with
every field as text, and as a map for the object's keys (``parse_json_frame`` does each
once per row). A field is **missing** when the JSON object lacks it (or
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


def _json_parses(payload: Column, group: FeatureGroup) -> tuple[Column, Column, Column]:
    """The three parses of a payload: typed, every field as text, the object's keys."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = input_schema(group)
    text_schema = T.StructType([T.StructField(f.name, T.StringType()) for f in schema.fields])
    typed = F.from_json(payload, schema, {"mode": "PERMISSIVE"})
    text = F.from_json(payload, text_schema, {"mode": "PERMISSIVE"})
    # the keys of the object; not json_object_keys, which calls a payload with a NaN or
    # Infinity token (Python's json.dumps writes them) "not JSON" while from_json reads it
    present = F.map_keys(F.from_json(payload, "map<string,string>", {"mode": "PERMISSIVE"}))
    return typed, text, present


def _json_columns(payload: Column, typed: Column, text: Column, present: Column,
                  group: FeatureGroup, origin: Column | None) -> list[Column]:
    from pyspark.sql import functions as F

    schema = input_schema(group)
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


def parse_json(payload: Column, group: FeatureGroup, origin: Column | None = None) -> list[Column]:
    """Columns to ``select`` from a frame holding the payload text: the parsed input
    columns, ``_sparkfs_raw``, ``_sparkfs_error`` and ``_sparkfs_origin``. In one select
    Spark may parse a payload once per column that reads it (a parse inside a ``when`` is
    not shared); ``parse_json_frame`` gives the same columns with each parse done once."""
    typed, text, present = _json_parses(payload, group)
    return _json_columns(payload, typed, text, present, group, origin)


_PARSED = ("_sparkfs_typed", "_sparkfs_text", "_sparkfs_keys")


def parse_json_frame(frame: DataFrame, payload: Column, group: FeatureGroup,
                     origin: Column | None = None) -> DataFrame:
    """``frame.select(*parse_json(payload, group, origin))`` in two steps: the three parses
    of each payload as columns first (Spark does not merge a projection that would repeat
    them), then the columns and the reason read from those: several times cheaper per row
    than the one select."""
    from pyspark.sql import functions as F

    typed, text, present = _json_parses(payload, group)
    staged = frame.select(payload.alias(RAW),
                          (origin if origin is not None else F.lit(None).cast("string")).alias(ORIGIN),
                          typed.alias(_PARSED[0]), text.alias(_PARSED[1]), present.alias(_PARSED[2]))
    typed_c, text_c, keys_c = (F.col(c) for c in _PARSED)
    return staged.select(*_json_columns(F.col(RAW), typed_c, text_c, keys_c, group, F.col(ORIGIN)))


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
    schema = _checked_avro_schema(group, schema)
    framed, decoded = _avro_decoded(payload, schema, confluent)
    return _avro_columns(payload, framed, decoded, group, origin)


def _checked_avro_schema(group: FeatureGroup, schema: str | None) -> str:
    """``schema`` (default: the group's), refused unless it is an Avro record schema with
    every field the group needs."""
    import json

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
    return schema


def _avro_decoded(payload: Column, schema: str, confluent: bool) -> tuple[Column, Column]:
    """(whether the payload has the Confluent header, or True; the decoded record)."""
    from pyspark.sql import functions as F

    from ..errors import ConfigError, first_line

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
                          f"(`python -m sparkfs.jvm fetch spark-kafka`): {first_line(exc)}"
                          ) from None
    return framed, decoded


def _avro_columns(payload: Column, framed: Column, decoded: Column, group: FeatureGroup,
                  origin: Column | None) -> list[Column]:
    from pyspark.sql import functions as F

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


def parse_avro_frame(frame: DataFrame, payload: Column, group: FeatureGroup,
                     schema: str | None = None, origin: Column | None = None,
                     confluent: bool = False) -> DataFrame:
    """``frame.select(*parse_avro(...))`` in two steps, as ``parse_json_frame``: each
    payload is decoded once, then the columns and the reason are read from the record."""
    from pyspark.sql import functions as F

    framed, decoded = _avro_decoded(payload, _checked_avro_schema(group, schema), confluent)
    staged = frame.select(payload.alias("_sparkfs_payload"),
                          (origin if origin is not None else F.lit(None).cast("string")).alias(ORIGIN),
                          framed.alias("_sparkfs_framed"), decoded.alias("_sparkfs_record"))
    return staged.select(*_avro_columns(F.col("_sparkfs_payload"), F.col("_sparkfs_framed"),
                                        F.col("_sparkfs_record"), group, F.col(ORIGIN)))


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
