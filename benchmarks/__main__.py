"""``python -m benchmarks core [--database URL] [--n N]``: the core service paths."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="suite", required=True)
    core = sub.add_parser("core", help="party create, stage change with plugins, hook dispatch overhead")
    core.add_argument("--database", help="database URL (default: a temporary SQLite file)")
    core.add_argument("--n", type=int, default=500, help="operations per measurement")
    args = parser.parse_args(argv)
    if args.suite == "core":
        from benchmarks.core import run

        run(database=args.database, n=args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
