"""Test helpers users can reuse in their own test suites.

* ``sparkfs.testing.hbase``: an HBase Thrift1 emulator (a fast, in-memory stand-in).
* ``sparkfs.testing.hbase_server``: a real single-node HBase 2.6 + Thrift1 (``RealHBase``).
* ``sparkfs.testing.conformance``: the online-store conformance suite (``OnlineConformance``).
* ``sparkfs.testing.plugin``: the pytest plugin (entry point ``pytest11``) with the
  ``hbase_emulator``, ``real_hbase``, ``hbase_online_config`` and ``spark_cluster`` fixtures.
* ``sparkfs.testing.spark_cluster``, ``sparkfs.testing.kafka``, ``sparkfs.testing.parity``.

Nothing is imported until a submodule is used.
"""


def __getattr__(name: str):
    # ``from sparkfs.testing import assert_transform_parity`` (sparkfs.testing.parity);
    # imported on first use, and it imports pyspark only when it runs the Spark path.
    if name == "assert_transform_parity":
        from .parity import assert_transform_parity

        return assert_transform_parity
    raise AttributeError(f"module 'sparkfs.testing' has no attribute {name!r}")
