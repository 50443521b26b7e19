"""``sparkfs materialize [group]``, ``sparkfs get-online [--features ... | --view name@v]``,
``sparkfs dev-hbase``."""

from __future__ import annotations

import argparse
import json
import re
import sys

from ..errors import ValidationError
from . import open_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("materialize", help="push the latest values from Delta to the online "
                       "store (incremental; every online group when no group is given)")
    p.add_argument("group", nargs="*", help="group names or name@version (default: every "
                   "online group's latest version)")
    p.add_argument("--engine", choices=["spark", "local"], default="spark",
                   help="spark: executors write partitions (default); local: DuckDB here")
    p.add_argument("--repo", help="feature repo .py file to apply first")
    p.set_defaults(func=_materialize)

    p = sub.add_parser("rebuild-online", help="rebuild online values from the Delta history "
                       "alone into an emptied online table (every online group when none given)")
    p.add_argument("group", nargs="?", help="group name or name@version (default: all)")
    p.add_argument("--engine", choices=["spark", "local"], default="spark",
                   help="spark: executors write partitions (default); local: DuckDB here")
    p.set_defaults(func=_rebuild_online)

    p = sub.add_parser("get-online", help="read online feature vectors (prints JSON)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--features", "-f", nargs="+", help="refs like weather:temp")
    what.add_argument("--view", help="a registered feature view, 'name' (latest version) or "
                      "'name@version': its columns, as in a training set of that view")
    p.add_argument("--entity", "-e", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                   help="one entity row; repeat for more rows (integers are read as ints)")
    p.add_argument("--entities", help='entity rows as JSON, e.g. \'[{"origin": "JFK"}]\'')
    p.add_argument("--full-names", action="store_true", help="name columns group__feature")
    p.add_argument("--status", action="store_true", help="add a __status column per feature")
    p.set_defaults(func=_get_online)

    p = sub.add_parser("dev-hbase", help="run the HBase Thrift1 emulator (a test stand-in "
                       "for HBase, data in memory), or with --real a single-node HBase 2.6 "
                       "from the fetched jars, until interrupted")
    p.add_argument("--host", default="127.0.0.1", help="emulator only: address to bind")
    p.add_argument("--port", type=int, default=9090, help="Thrift port (0: pick a free one)")
    p.add_argument("--real", action="store_true", help="start a real standalone HBase "
                   "(master, region server, ZooKeeper) and its Thrift1 server on 127.0.0.1")
    p.add_argument("--data-dir", help="--real: keep HBase's data, conf and logs here "
                   "(default: a temporary directory, removed on exit)")
    p.set_defaults(func=_dev_hbase)


def _materialize(args: argparse.Namespace) -> int:
    """One JSON line per group, printed as each group finishes."""
    fs = open_store(args)
    try:
        if args.repo:
            from ..repo import load_repo

            fs.apply(load_repo(args.repo))
        for group in args.group or [None]:
            for r in fs.materialize(group, engine=args.engine):
                print(json.dumps(r.to_dict()), flush=True)
    finally:
        fs.close()
    return 0


_INT_RE = re.compile(r"-?[0-9]{1,18}")


def _rebuild_online(args: argparse.Namespace) -> int:
    fs = open_store(args)
    try:
        for r in fs.rebuild_online(args.group, engine=args.engine):
            print(json.dumps(r.to_dict()), flush=True)
    finally:
        fs.close()
    return 0


def _parse_entity(text: str) -> dict:
    row = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"--entity {text!r}: write KEY=VALUE[,KEY=VALUE]")
        value = value.strip()
        row[key.strip()] = int(value) if _INT_RE.fullmatch(value) else value
    return row


def _get_online(args: argparse.Namespace) -> int:
    rows = [_parse_entity(e) for e in args.entity]
    if args.entities:
        try:
            rows += json.loads(args.entities)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"--entities is not valid JSON: {exc}") from None
    if not rows:
        raise ValidationError("give at least one --entity KEY=VALUE or --entities JSON")
    fs = open_store(args)
    try:
        resp = fs.get_online_features(args.features, rows, full_feature_names=args.full_names,
                                      view=args.view)
        print(json.dumps(resp.to_dict(include_status=args.status), default=str))
    finally:
        fs.close()
    return 0


def _dev_hbase(args: argparse.Namespace) -> int:
    from .._extras import require

    require("thriftpy2", extra="hbase", what="sparkfs dev-hbase")
    if args.real:
        return _dev_hbase_real(args)
    from ..testing.hbase import HBaseEmulator

    emu = HBaseEmulator(args.host, args.port)
    print(f"HBase Thrift1 emulator (in-memory test stand-in, not HBase) on "
          f"{emu.host}:{emu.port}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


def _dev_hbase_real(args: argparse.Namespace) -> int:
    import signal
    import time

    from ..errors import OnlineStoreError
    from ..testing.hbase_server import HBaseServerError, RealHBase

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so that the JVMs are stopped below

    signal.signal(signal.SIGTERM, terminate)
    hbase = RealHBase(args.data_dir, thrift_port=args.port)
    print("starting a single-node HBase (standalone) and its Thrift1 server ...",
          file=sys.stderr, flush=True)
    try:
        try:
            hbase.start()
        except HBaseServerError as exc:
            raise OnlineStoreError(str(exc)) from None
        print(f"HBase Thrift1 on {hbase.host}:{hbase.port} (ZooKeeper on {hbase.zk_port}), "
              f"ready in {hbase.startup_seconds}s; data and logs in {hbase.workdir}; "
              "Ctrl-C to stop", file=sys.stderr, flush=True)
        while hbase.running:
            time.sleep(1)
        print(f"HBase exited:\n{hbase.log('master')}\n{hbase.log('thrift')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        hbase.stop()
