"""``sparkfs materialize [group]``, ``sparkfs rebuild-online``,
``sparkfs get-online [--features ... | --view name@v]``, ``sparkfs dev-hbase``.

>>> import typer
>>> app = typer.Typer(); register(app)
>>> [c.name for c in app.registered_commands]
['materialize', 'rebuild-online', 'get-online', 'dev-hbase']
"""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated, Literal

import typer

from ..errors import ValidationError
from . import config_of, open_store

ENGINE_HELP = "spark: executors write partitions (default); local: DuckDB here"
Engine = Annotated[Literal["spark", "local"], typer.Option(help=ENGINE_HELP)]


def register(app: typer.Typer) -> None:
    """Add the online-store commands to ``app``."""
    app.command("materialize", help="push the latest values from Delta to the online store "
                "(incremental; every online group when no group is given)")(_materialize)
    app.command("rebuild-online", help="rebuild online values from the Delta history alone "
                "into an emptied online table (every online group when none given)")(
                    _rebuild_online)
    app.command("get-online", help="read online feature vectors (prints JSON)")(_get_online)
    app.command("dev-hbase", help="run the HBase Thrift1 emulator (a test stand-in for "
                "HBase, data in memory), or with --real a single-node HBase 2.6 from the "
                "fetched jars, until interrupted")(_dev_hbase)


def _materialize(ctx: typer.Context,
                 group: Annotated[list[str] | None, typer.Argument(
                     help="group names or name@version (default: every online group's "
                     "latest version)", show_default=False)] = None,
                 engine: Engine = "spark",
                 repo: Annotated[str | None, typer.Option(
                     help="feature repo .py file to apply first")] = None) -> int:
    """One JSON line per group, printed as each group finishes."""
    fs = open_store(config_of(ctx))
    try:
        if repo:
            from ..repo import load_repo

            fs.apply(load_repo(repo))
        targets: list[str | None] = list(group) if group else [None]
        for g in targets:
            for r in fs.materialize(g, engine=engine):
                print(json.dumps(r.to_dict()), flush=True)
    finally:
        fs.close()
    return 0


_INT_RE = re.compile(r"-?[0-9]{1,18}")


def _rebuild_online(ctx: typer.Context,
                    group: Annotated[str | None, typer.Argument(
                        help="group name or name@version (default: all)",
                        show_default=False)] = None,
                    engine: Engine = "spark") -> int:
    fs = open_store(config_of(ctx))
    try:
        for r in fs.rebuild_online(group, engine=engine):
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


def _get_online(ctx: typer.Context,
                features: Annotated[list[str] | None, typer.Option(
                    "--features", "-f", help="refs like weather:temp (several after one -f, "
                    "or repeat -f)")] = None,
                view: Annotated[str | None, typer.Option(
                    help="a registered feature view, 'name' (latest version) or "
                    "'name@version': its columns, as in a training set of that view")] = None,
                entity: Annotated[list[str] | None, typer.Option(
                    "--entity", "-e", metavar="KEY=VALUE[,KEY=VALUE]",
                    help="one entity row; repeat for more rows (integers are read as ints)")
                ] = None,
                entities: Annotated[str | None, typer.Option(
                    help='entity rows as JSON, e.g. \'[{"origin": "JFK"}]\'')] = None,
                full_names: Annotated[bool, typer.Option(
                    "--full-names", help="name columns group__feature")] = False,
                status: Annotated[bool, typer.Option(
                    "--status", help="add a __status column per feature")] = False) -> int:
    if features is not None and view is not None:
        raise typer.BadParameter("argument --view: not allowed with argument --features/-f")
    if features is None and view is None:
        raise typer.BadParameter("one of the arguments --features/-f --view is required")
    rows = [_parse_entity(e) for e in entity or []]
    if entities:
        try:
            rows += json.loads(entities)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"--entities is not valid JSON: {exc}") from None
    if not rows:
        raise ValidationError("give at least one --entity KEY=VALUE or --entities JSON")
    fs = open_store(config_of(ctx))
    try:
        resp = fs.get_online_features(features, rows, full_feature_names=full_names,
                                      view=view)
        print(json.dumps(resp.to_dict(include_status=status), default=str))
    finally:
        fs.close()
    return 0


def _dev_hbase(host: Annotated[str, typer.Option(
                   help="emulator only: address to bind")] = "127.0.0.1",
               port: Annotated[int, typer.Option(
                   help="Thrift port (0: pick a free one)")] = 9090,
               real: Annotated[bool, typer.Option(
                   "--real", help="start a real standalone HBase (master, region server, "
                   "ZooKeeper) and its Thrift1 server on 127.0.0.1")] = False,
               data_dir: Annotated[str | None, typer.Option(
                   help="--real: keep HBase's data, conf and logs here (default: a "
                   "temporary directory, removed on exit)")] = None) -> int:
    from .._extras import require

    require("thriftpy2", extra="hbase", what="sparkfs dev-hbase")
    if real:
        return _dev_hbase_real(data_dir, port)
    from ..testing.hbase import HBaseEmulator

    emu = HBaseEmulator(host, port)
    print(f"HBase Thrift1 emulator (in-memory test stand-in, not HBase) on "
          f"{emu.host}:{emu.port}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


def _dev_hbase_real(data_dir: str | None, port: int) -> int:
    import signal
    import time

    from ..errors import OnlineStoreError
    from ..testing.hbase_server import HBaseServerError, RealHBase

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so that the JVMs are stopped below

    signal.signal(signal.SIGTERM, terminate)
    hbase = RealHBase(data_dir, thrift_port=port)
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
