"""The ``netlapse`` command: ``demo``, ``info``, ``render`` (and more as the package grows)."""

from __future__ import annotations

import argparse
import sys

from .errors import NetlapseError

__all__ = ["main"]


def _cmd_info(args) -> int:
    from ._info import describe_run

    print(describe_run(args.run))
    return 0


def _cmd_demo(args) -> int:
    from .tour import run_tour

    return run_tour(args.scenes, out=args.out, quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netlapse",
        description="Record what happens inside a neural network while it trains, and look at it.",
        epilog="Start with `netlapse demo`, then `netlapse info RUN` on a run it made.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from .tour import SCENES

    p = sub.add_parser(
        "demo", help="train the tour's scenes (one per user story) and show them",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train small seeded networks that reproduce the user stories, record them\n"
                    "with netlapse, and draw pictures from the recorded runs. Runs go to\n"
                    "OUT/runs/, pictures (PNG, GIF, MP4, HTML player) to OUT/, and\n"
                    "OUT/index.html is a gallery that says what to see in each picture.",
        epilog="scenes: " + ", ".join(SCENES) + "\n\nexamples:\n  netlapse demo\n"
               "  netlapse demo rings poly-fit --out /tmp/tour\n  netlapse demo --quick")
    p.add_argument("scenes", nargs="*", metavar="SCENE",
                   help="scenes to run (default: all): " + ", ".join(SCENES))
    p.add_argument("--out", default="netlapse-demo", metavar="DIR",
                   help="output folder for runs, pictures and index.html (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smaller sweeps, fewer epochs and frames (well under a minute)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("info", help="print a run's streams, status and metrics",
                       description="Print a table of a run's streams (kind, capture, shape, dtype, "
                                   "steps, size on disk), its status and its metrics.")
    p.add_argument("run", help="path of a run folder")
    p.set_defaults(func=_cmd_info)

    from ._render_cli import add_render_parser

    add_render_parser(sub)
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
