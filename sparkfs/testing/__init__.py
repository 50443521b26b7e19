"""Test helpers users can reuse in their own test suites.

``sparkfs.testing.hbase``: an HBase Thrift1 emulator (a stand-in for HBase in tests) and
its ``hbase_emulator`` pytest fixture. Nothing is imported until a submodule is used.
"""


def __getattr__(name: str):
    # ``from sparkfs.testing import assert_transform_parity`` (sparkfs.testing.parity);
    # imported on first use, and it imports pyspark only when it runs the Spark path.
    if name == "assert_transform_parity":
        from .parity import assert_transform_parity

        return assert_transform_parity
    raise AttributeError(f"module 'sparkfs.testing' has no attribute {name!r}")
