"""Reading speed: ``at(step)`` of a big full stream, a stream's stats, ``open_run`` of many streams.

    python benchmarks/read_speed.py            # 10,000 steps of a 784x512 float32 stream (~14 GB)
    python benchmarks/read_speed.py --quick    # 1,000 steps
    python benchmarks/read_speed.py --keep DIR # write the runs under DIR and leave them there

Targets (issue 6): ``at(step)`` under 20 ms; stats over 10,000 steps under 50 ms; ``open_run``
of a run with 200 streams under 200 ms. Each number is the median over repetitions, every
repetition with a fresh ``open_run`` (so zarr metadata is read again; the OS page cache is
warm, as it is for a dashboard re-reading a run).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netlapse import Run, open_run  # noqa: E402
from netlapse._progress import progress  # noqa: E402


def write_big_run(path: Path, steps: int, shape=(784, 512)) -> None:
    """One full float32 stream that drifts a little every step, like trained weights."""
    rng = np.random.default_rng(0)
    w0 = (rng.standard_normal(shape) * 0.05).astype(np.float32)
    drift = (rng.standard_normal(shape) * 1e-4).astype(np.float32)
    w = np.empty_like(w0)
    with Run(path, flush_every=5.0) as run, progress(steps, "writing full stream", "step") as bar:
        for t in range(steps):
            np.multiply(drift, np.float32(t), out=w)
            w += w0
            run.record_array("weights/fc1.weight", w, step=t)
            run.log(step=t, loss=1.0 / (t + 1))
            bar.update()


def write_wide_run(path: Path, streams: int, steps: int) -> None:
    """``streams`` stats-only streams of small tensors."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(256).astype(np.float32)
    with Run(path) as run:
        for t in range(steps):
            for i in range(streams):
                run.record_array(f"weights/layer{i}.weight", x + t, step=t, full=False)


def timed(fn, reps: int) -> tuple[float, float, float]:
    fn()   # warm the page cache and imports
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, min(times) * 1e3, max(times) * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 steps instead of 10,000")
    ap.add_argument("--steps", type=int, help="steps of the big stream (default 10,000)")
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions (default 20)")
    ap.add_argument("--keep", help="write the runs under this folder and keep them")
    args = ap.parse_args(argv)
    steps = args.steps or (1000 if args.quick else 10_000)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="netlapse-read-"))
    base.mkdir(parents=True, exist_ok=True)
    big, wide = base / "big", base / "wide"
    try:
        if not (big / "run.json").exists():
            t0 = time.perf_counter()
            write_big_run(big, steps)
            print(f"wrote {steps} steps of 784x512 float32 in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
        if not (wide / "run.json").exists():
            write_wide_run(wide, 200, 20)
        rng = np.random.default_rng(2)
        picks = iter(rng.integers(0, steps, size=args.reps * 4 + 8))
        name = "weights/fc1.weight"

        def at_fresh():
            r = open_run(big)
            return r[name].at(int(next(picks)))

        reader = open_run(big)
        stream = reader[name]

        def at_open():
            return stream.at(int(next(picks)))

        def stats_fresh():
            return open_run(big)[name].stats

        def stats_array_fresh():
            return open_run(big)[name].stats_array

        def open_wide():
            r = open_run(wide)
            return r.streams()

        check = open_run(big)[name]
        assert check.length == steps, (check.length, steps)
        rows = [
            (f"open_run + at(step), {steps} steps of 784x512", timed(at_fresh, args.reps), 20),
            ("at(step) on an open reader", timed(at_open, args.reps), 20),
            (f"open_run + stats DataFrame, {steps} steps", timed(stats_fresh, args.reps), 50),
            (f"open_run + stats_array, {steps} steps", timed(stats_array_fresh, args.reps), 50),
            ("open_run + streams() of a run with 200 streams", timed(open_wide, args.reps), 200),
        ]
        size = sum(p.stat().st_size for p in big.rglob("*") if p.is_file())
        print(f"\nbig run on disk: {size / 1e9:.2f} GB ({size / steps / 1e6:.2f} MB a step, "
              f"raw {784 * 512 * 4 / 1e6:.2f} MB); {args.reps} repetitions each.\n")
        print("| read | median ms (min-max) | target ms | met |")
        print("| --- | --- | --- | --- |")
        for label, (med, lo, hi), target in rows:
            print(f"| {label} | {med:.1f} ({lo:.1f}-{hi:.1f}) | < {target} | "
                  f"{'yes' if med < target else 'NO'} |")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
