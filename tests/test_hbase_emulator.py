"""The HBase Thrift1 emulator's semantics, through an unmodified happybase client, and the
same assertions against a real HBase 2.6 (so the emulator is checked against HBase)."""

from __future__ import annotations

import happybase
import pytest

from sparkfs.testing.plugin import unique_prefix


@pytest.fixture(params=["emulator", "real"])
def con(request):
    server = request.getfixturevalue("hbase_emulator" if request.param == "emulator"
                                     else "real_hbase")
    c = happybase.Connection(server.host, server.port, table_prefix=unique_prefix(),
                             timeout=60_000)
    yield c
    for name in c.tables():
        c.delete_table(name, disable=True)
    c.close()


def test_newest_timestamp_wins_and_versions_are_kept(con):
    con.create_table("t", {"f": dict(max_versions=2)})
    t = con.table("t")
    t.put(b"r", {b"f:q": b"v2"}, timestamp=2)
    t.put(b"r", {b"f:q": b"v3"}, timestamp=3)
    t.put(b"r", {b"f:q": b"v1"}, timestamp=1)     # older, arrives last
    assert t.row(b"r", include_timestamp=True) == {b"f:q": (b"v3", 3)}
    assert t.cells(b"r", b"f:q", versions=5) == [b"v3", b"v2"]   # max_versions=2
    t.put(b"r", {b"f:q": b"v3b"}, timestamp=3)    # same timestamp overwrites
    assert t.row(b"r") == {b"f:q": b"v3b"}
    assert t.row(b"r", timestamp=3) == {b"f:q": b"v2"}           # ...Ts reads: below 3


def test_deletes_mask_older_puts_and_ttl_hides_old_cells(hbase_emulator):
    con = happybase.Connection(hbase_emulator.host, hbase_emulator.port)
    con.create_table("t", {"f": dict(time_to_live=60)})
    t = con.table("t")
    hbase_emulator.clock = lambda: 1_000_000
    t.put(b"r", {b"f:q": b"a", b"f:z": b"b"}, timestamp=999_000)
    t.delete(b"r", columns=[b"f:q"], timestamp=999_500)
    t.put(b"r", {b"f:q": b"late"}, timestamp=999_100)   # masked by the delete marker
    assert t.row(b"r") == {b"f:z": b"b"}
    hbase_emulator.clock = lambda: 999_000 + 61_000     # 61 s later: past the 60 s ttl
    assert t.row(b"r") == {}


def test_scans_batches_counters_and_admin(con):
    con.create_table("t", {"f": {}, "g": {}})
    assert con.tables() == [b"t"] and set(con.table("t").families()) == {b"f", b"g"}
    t = con.table("t")
    with t.batch(batch_size=3) as b:
        for i in range(10):
            b.put(b"r%02d" % i, {b"f:q": b"%d" % i, b"g:x": b"x"})
    assert [k for k, _ in t.scan(row_start=b"r03", row_stop=b"r06")] == [b"r03", b"r04", b"r05"]
    assert [k for k, _ in t.scan(row_prefix=b"r0", columns=[b"g"], limit=2)] == [b"r00", b"r01"]
    assert [k for k, _ in t.scan(reverse=True, limit=2)] == [b"r09", b"r08"]
    assert dict(t.rows([b"r01", b"nope", b"r02"], columns=[b"f:q"])) == {b"r01": {b"f:q": b"1"},
                                                                         b"r02": {b"f:q": b"2"}}
    assert t.counter_inc(b"c", b"f:n", 5) == 5 and t.counter_dec(b"c", b"f:n") == 4
    with pytest.raises(Exception, match="NoSuchColumnFamily"):
        t.put(b"r", {b"h:q": b"v"})
    with pytest.raises(Exception, match="AlreadyExists|already exists"):
        con.create_table("t", {"f": {}})
    con.delete_table("t", disable=True)
    assert con.tables() == []
