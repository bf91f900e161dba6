"""``netlapse export RUN --tensorboard DIR``: a run as TensorBoard event files."""

from __future__ import annotations

import sys

__all__ = ["add_export_parser", "export_command"]


def export_command(args) -> int:
    from ..export import tensorboard

    try:
        done = tensorboard(args.run, args.tensorboard, images=args.images,
                           streams=args.stream or None)
    except ImportError as exc:
        print(f"netlapse: error: {exc}", file=sys.stderr)
        return 1
    total = done["scalars"] + done["histograms"] + done["images"]
    if not total:
        print(f"{args.tensorboard}: up to date (nothing committed since the last export)")
        return 0
    print(f"{args.tensorboard}: wrote {done['scalars']} scalars, {done['histograms']} histograms"
          + (f", {done['images']} images" if args.images else "")
          + (f"; {done['skipped']} steps with no finite value have no histogram" if done["skipped"] else "")
          + f". View them: tensorboard --logdir {args.tensorboard}")
    return 0


def add_export_parser(sub) -> None:
    import argparse

    p = sub.add_parser(
        "export", help="write a run as TensorBoard event files (metrics, histograms, images)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a run's metrics as TensorBoard scalars and every stream's stored "
                    "histograms (the same bins and counts) as TensorBoard histograms, with "
                    "TensorBoard's own event-file writer. A run being written exports what is "
                    "committed; exporting again into the same folder appends only new steps "
                    "(the folder keeps netlapse-export.json). Needs: pip install "
                    "'netlapse[tensorboard]'.",
        epilog="examples:\n  netlapse export runs/mnist --tensorboard tb/mnist\n"
               "  netlapse export runs/mnist --tensorboard tb/mnist --images\n"
               "  tensorboard --logdir tb")
    p.add_argument("run", help="path of a run folder")
    p.add_argument("--tensorboard", required=True, metavar="DIR",
                   help="folder for the event files (one folder per run)")
    p.add_argument("--images", action="store_true",
                   help="also write each 2-D stream captured in full as an image per step")
    p.add_argument("--stream", action="append", metavar="NAME",
                   help="export only this stream (repeat for several; default: all)")
    p.set_defaults(func=export_command)
