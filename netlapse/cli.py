"""The ``netlapse`` command: ``demo``, ``info`` (and more as the package grows)."""

from __future__ import annotations

import argparse
import sys

from .errors import NetlapseError

__all__ = ["main"]


def _cmd_info(args) -> int:
    from ._info import inspect_run

    text, problems = inspect_run(args.run, check=args.check)
    print(text)
    for problem in problems:
        print(f"netlapse: error: {problem}", file=sys.stderr)
    if problems:
        print(f"netlapse: error: {len(problems)} damaged file(s) in {args.run}; every other file "
              "reads normally.", file=sys.stderr)
    return 1 if problems else 0


def _cmd_demo(args) -> int:
    from .tour import run_tour

    return run_tour(args.scenes, out=args.out, quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netlapse",
        description="Record what happens inside a neural network while it trains, and look at it.",
        epilog="Start with `netlapse demo`, then `netlapse info RUN` on a run it made.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="train the tour's scenes (one per user story) and show them",
                       description="Train small seeded networks that reproduce the user stories, "
                                   "record them with netlapse, and write runs and pictures.")
    p.add_argument("scenes", nargs="*", help="scenes to run (default: all)")
    p.add_argument("--out", default="netlapse-demo", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="smaller sweeps and fewer frames")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("info", help="print a run's streams, status and metrics",
                       description="Print a table of a run's streams (kind, capture, shape, dtype, "
                                   "steps, size on disk), its status and its metrics. Exits 1 "
                                   "when files of the run are damaged (named on stderr).")
    p.add_argument("run", help="path of a run folder")
    p.add_argument("--check", action="store_true",
                   help="also decode every recorded chunk, to find damaged files (reads the whole run)")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except NetlapseError as exc:
        print(f"netlapse: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("netlapse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
