"""``python -m benchmarks run --size 100k|1m [--database URL] [--keep]``: everything at scale
(``--reuse DB`` measures again on a kept database);
``python -m benchmarks core [--database URL] [--n N]``: the core service paths alone;
``python -m benchmarks roundtrips [--database URL]``: a write with the round-trip savings on and off;
``python -m benchmarks outbox [--database URL] [--jobs N]``: the outbox worker;
``python -m benchmarks peer --size 100k [--database URL]``: crmcore beside Django-CRM, same data."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="suite", required=True)
    core = sub.add_parser("core", help="party create, stage change with plugins, hook dispatch overhead")
    core.add_argument("--database", help="database URL (default: a temporary SQLite file)")
    core.add_argument("--n", type=int, default=500, help="operations per measurement")
    trips = sub.add_parser("roundtrips", help="create and stage change with the round-trip savings on and off")
    trips.add_argument("--database", help="database URL (default: a temporary SQLite file)")
    trips.add_argument("--blocks", type=int, default=16, help="alternating blocks per mode")
    trips.add_argument("--per-block", type=int, default=25, help="calls per block")
    big = sub.add_parser("run", help="build N parties through the import path, then measure everything")
    big.add_argument("--size", default="100k", help="1k, 10k, 100k, 1m or a number of parties")
    big.add_argument("--database", help="PostgreSQL URL: the harness makes scratch databases beside it "
                                        "(default: temporary SQLite files)")
    big.add_argument("--keep", action="store_true", help="keep the scratch PostgreSQL databases")
    big.add_argument("--http-seconds", type=float, default=10.0, help="length of the API load run")
    big.add_argument("--skip", default="", help="comma-separated: raw, writes, http")
    big.add_argument("--reuse", help="measure again on a database an earlier --keep run left (SQLite "
                                     "file or PostgreSQL URL): no import, no raw copy")
    outbox = sub.add_parser("outbox", help="outbox worker: jobs/s (1 and 2 workers), table size under load")
    outbox.add_argument("--database", help="also PostgreSQL: scratch databases beside this URL "
                                           "(SQLite always runs, in a temporary file)")
    outbox.add_argument("--jobs", type=int, default=20_000, help="jobs queued per throughput run")
    outbox.add_argument("--batch", type=int, default=100, help="rows a worker claims at a time")
    outbox.add_argument("--rate", type=float, default=1000.0, help="jobs/s queued during the load run")
    outbox.add_argument("--seconds", type=float, default=10.0, help="length of the load run")
    outbox.add_argument("--retention", type=float, default=2.0, help="seconds finished rows are kept in the load run")
    peer = sub.add_parser("peer", help="crmcore beside Django-CRM 0.9.0 (own virtualenv), same data, same run")
    peer.add_argument("--size", default="100k", help="1k, 10k, 100k, 1m or a number of parties")
    peer.add_argument("--database", help="PostgreSQL URL: scratch databases beside it for both systems "
                                         "(default: temporary SQLite files)")
    peer.add_argument("--keep", action="store_true", help="keep the scratch databases")
    peer.add_argument("--calls", type=int, default=30, help="timed requests per list measurement")
    peer.add_argument("--creates", type=int, default=300, help="one-by-one creates (service / ORM save)")
    peer.add_argument("--api-creates", type=int, default=100, help="one-by-one creates through each API")
    peer.add_argument("--venv", help="the peer's virtualenv (default ~/.cache/crmcore-bench/peer-venv)")
    args = parser.parse_args(argv)
    if args.suite == "peer":
        from pathlib import Path

        from benchmarks.peer.compare import Settings
        from benchmarks.peer.compare import run as run_peer

        run_peer(args.size, args.database, keep=args.keep, venv_path=Path(args.venv) if args.venv else None,
                 settings=Settings(calls=args.calls, creates=args.creates, api_creates=args.api_creates))
        return 0
    if args.suite == "roundtrips":
        from benchmarks.roundtrips import run as run_roundtrips

        run_roundtrips(args.database, args.blocks, args.per_block)
        return 0
    if args.suite == "outbox":
        from benchmarks.outbox import run as run_outbox

        run_outbox(args.database, jobs=args.jobs, batch=args.batch, load_rate=args.rate,
                   load_seconds=args.seconds, retention=args.retention)
        return 0
    if args.suite == "run":
        from benchmarks.run import run as run_all

        run_all(args.size, args.database, keep=args.keep, http_seconds=args.http_seconds,
                skip=tuple(s for s in args.skip.split(",") if s), reuse=args.reuse)
        return 0
    if args.suite == "core":
        from benchmarks.core import run

        run(database=args.database, n=args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
