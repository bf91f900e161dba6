"""``netlapse doctor RUN [--json] [--step N]``: the doctor's report on a recorded run."""

from __future__ import annotations

import json
import sys

__all__ = ["add_doctor_parser", "doctor_command"]


def add_doctor_parser(sub) -> None:
    import argparse

    p = sub.add_parser(
        "doctor", help="diagnose training health: vanishing/exploding gradients, dead or "
                       "saturated units, update ratios, NaN/Inf, unused parameters",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read a run's store and report what is wrong with the training, where "
                    "(which layers), since when (which step), with the numbers, and what "
                    "usually fixes it. Works on a run still being written (what is committed). "
                    "Formulas and thresholds: docs/doctor.md.",
        epilog="exit status: 0 healthy (warnings allowed), 1 a problem was found, 2 the run "
               "cannot be read.\n\nexamples:\n  netlapse doctor runs/mnist\n"
               "  netlapse doctor runs/mnist --json | jq '.findings[].kind'\n"
               "  netlapse doctor runs/mnist --step 500")
    p.add_argument("run", help="path of a run folder")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON: {run, steps, findings, checked, skipped}")
    p.add_argument("--step", type=int, default=None,
                   help="diagnose as of this step (default: the last committed one)")
    p.set_defaults(func=doctor_command)


def doctor_command(args) -> int:
    from ..doctor import diagnose
    from ..errors import NetlapseError

    try:
        report = diagnose(args.run, step=args.step)
    except (NetlapseError, OSError, ValueError) as exc:
        print(f"netlapse: error: cannot read {args.run}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        print(report)
    return 0 if report.ok else 1
