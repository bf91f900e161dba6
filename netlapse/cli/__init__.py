"""The ``netlapse`` command: ``demo``, ``info``, ``render``, ``export``, ``ui``."""

from __future__ import annotations

import argparse
import sys

from ..errors import NetlapseError

__all__ = ["main"]


def _cmd_info(args) -> int:
    from .info import inspect_run

    text, problems = inspect_run(args.run, check=args.check)
    print(text)
    for problem in problems:
        print(f"netlapse: error: {problem}", file=sys.stderr)
    if problems:
        print(f"netlapse: error: {len(problems)} damaged file(s) in {args.run}; every other file "
              "reads normally.", file=sys.stderr)
    return 1 if problems else 0


def _cmd_demo(args) -> int:
    from ..tour import run_tour

    return run_tour(args.scenes, out=args.out, quick=args.quick)


def _cmd_ui(args) -> int:
    from pathlib import Path

    from ..store.layout import RUN_FILE

    try:
        from ..ui import serve
    except ImportError as exc:
        print(f"netlapse: error: {exc}", file=sys.stderr)
        return 1
    root = Path(args.runs_dir)
    if not root.is_dir():
        print(f"netlapse: error: {root} is not a folder. Pass the folder that holds your runs.",
              file=sys.stderr)
        return 1
    if (root / RUN_FILE).is_file():
        print(f"netlapse: error: {root} is a run itself; pass the folder that holds it "
              f"(netlapse ui {root.resolve().parent}).", file=sys.stderr)
        return 1
    serve(root, host=args.host, port=args.port, token=args.token, open_browser=not args.no_browser)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netlapse",
        description="Record what happens inside a neural network while it trains, and look at it.",
        epilog="Start with `netlapse demo`, then `netlapse info RUN` on a run it made.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from ..tour import SCENES

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
                                   "steps, size on disk), its status and its metrics. Exits 1 "
                                   "when files of the run are damaged (named on stderr).")
    p.add_argument("run", help="path of a run folder")
    p.add_argument("--check", action="store_true",
                   help="also decode every recorded chunk, to find damaged files (reads the whole run)")
    p.set_defaults(func=_cmd_info)

    from .render import add_render_parser

    add_render_parser(sub)

    from .export import add_export_parser

    add_export_parser(sub)

    from .doctor import add_doctor_parser

    add_doctor_parser(sub)

    p = sub.add_parser("ui", help="live dashboard over a folder of runs, in your browser",
                       description="Serve a dashboard of every run under RUNS_DIR (nested folders "
                                   "too): metrics, layer table, distributions, weight images with "
                                   "a step slider, layer profile, probe views, run comparison. "
                                   "Runs being written update live. Needs: pip install 'netlapse[ui]'.")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR",
                   help="folder that holds the runs (default: %(default)s)")
    p.add_argument("--port", type=int, default=8765, help="port (default: %(default)s; 0 = any free)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only). Any other "
                        "address requires a token, generated and printed in the URL unless given")
    p.add_argument("--token", default=None, help="access token (default: none on loopback, "
                                                  "a random one otherwise)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.set_defaults(func=_cmd_ui)
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
