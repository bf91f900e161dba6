"""The training thread's cost of handing a step to the writer: ``run.record_group`` + ``run.log``.

Measures CPU time of the calling thread only (``time.thread_time``) around those calls, per
step, for a group of 6 float32 64x64 tensors (stats), with a 1 ms pause between steps standing
in for the training step so that the writer keeps up. Thread CPU time is far less sensitive to
machine load than wall time. With ``--against DIR`` (another checkout of netlapse, e.g.
``git worktree add /tmp/old <commit>`` and its kernel built) both are run alternately in
fresh processes and the ratio is printed side by side:

    python benchmarks/handoff.py                          # this checkout
    python benchmarks/handoff.py --against /tmp/old --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(steps: int) -> tuple[float, float, float]:
    import numpy as np

    import netlapse as nl
    from netlapse._record.pipeline import Group, StreamSpec

    meta = {"kind": "grads", "capture": "stats", "shape": [64, 64], "dtype": "float32"}
    group = Group([StreamSpec(f"grads/p{i}", meta, (64, 64), np.dtype(np.float32), False)
                   for i in range(6)])
    src = [np.random.default_rng(i).normal(size=(64, 64)).astype(np.float32) for i in range(6)]

    def fill(views):
        for v, s in zip(views, src):
            np.copyto(v, s)

    with tempfile.TemporaryDirectory() as d:
        run = nl.Run(Path(d) / "r")
        for k in range(200):                        # warm-up: slabs allocated, arrays created
            run.record_group(group, k, fill)
            run.log(k, loss=1.0)
        cpu = wall = 0.0
        for k in range(200, 200 + steps):
            t0, w0 = time.thread_time(), time.perf_counter()
            run.record_group(group, k, fill)
            run.log(k, loss=1.0)
            cpu += time.thread_time() - t0
            wall += time.perf_counter() - w0
            time.sleep(0.001)
        waited = run.waited_s
        run.close()
    return cpu / steps * 1e6, wall / steps * 1e6, waited


def _measure(tree: Path, steps: int) -> tuple[float, float, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, __file__, "--child", str(steps)], env=env, cwd=tree,
                         capture_output=True, text=True, check=True)
    cpu, wall, waited = map(float, out.stdout.split())
    return cpu, wall, waited


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3, help="fresh processes per checkout, alternated")
    ap.add_argument("--against", type=Path, help="another netlapse checkout to compare with")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("%.3f %.3f %.4f" % child(args.child))
        return
    trees = {"this": ROOT}
    if args.against:
        trees["against"] = args.against.resolve()
    got: dict[str, list] = {k: [] for k in trees}
    for rep in range(args.reps):
        for name, tree in trees.items():
            got[name].append(_measure(tree, args.steps))
            cpu, wall, waited = got[name][-1]
            print(f"rep {rep + 1} {name}: {cpu:.1f} us CPU/step, {wall:.1f} us wall/step, "
                  f"waited {waited:.2f} s", file=sys.stderr)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{args.steps} steps per process, {args.reps} alternating repetitions; load average "
          f"{load} on {os.cpu_count()} cores.\n")
    print("| checkout | training-thread CPU us/step, median (min-max) | wall us/step, median | waited s, median |")
    print("| --- | --- | --- | --- |")
    med = {}
    for name, rows in got.items():
        cpus = [r[0] for r in rows]
        med[name] = statistics.median(cpus)
        print(f"| {name} ({trees[name]}) | {med[name]:.1f} ({min(cpus):.1f}-{max(cpus):.1f}) | "
              f"{statistics.median(r[1] for r in rows):.1f} | {statistics.median(r[2] for r in rows):.2f} |")
    if "against" in med:
        print(f"\nthis / against, training-thread CPU per step: {med['this'] / med['against']:.3f}")


if __name__ == "__main__":
    main()
