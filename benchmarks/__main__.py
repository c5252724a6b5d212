"""``python -m benchmarks run --size 100k|1m [--database URL]``: everything at scale;
``python -m benchmarks core [--database URL] [--n N]``: the core service paths alone."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="suite", required=True)
    core = sub.add_parser("core", help="party create, stage change with plugins, hook dispatch overhead")
    core.add_argument("--database", help="database URL (default: a temporary SQLite file)")
    core.add_argument("--n", type=int, default=500, help="operations per measurement")
    big = sub.add_parser("run", help="build N parties through the import path, then measure everything")
    big.add_argument("--size", default="100k", help="1k, 10k, 100k, 1m or a number of parties")
    big.add_argument("--database", help="PostgreSQL URL: the harness makes scratch databases beside it "
                                        "(default: temporary SQLite files)")
    big.add_argument("--keep", action="store_true", help="keep the scratch PostgreSQL databases")
    big.add_argument("--http-seconds", type=float, default=10.0, help="length of the API load run")
    big.add_argument("--skip", default="", help="comma-separated: raw, writes, http")
    args = parser.parse_args(argv)
    if args.suite == "run":
        from benchmarks.run import run as run_all

        run_all(args.size, args.database, keep=args.keep, http_seconds=args.http_seconds,
                skip=tuple(s for s in args.skip.split(",") if s))
        return 0
    if args.suite == "core":
        from benchmarks.core import run

        run(database=args.database, n=args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
