"""Where a model's recording overhead comes from: the writer thread or the training thread.

A diagnostic, not a measure of netlapse as users run it. One process holds the bare model and
its watched copy (benchmarks/paired_overhead.py's arms) and times them in alternating blocks.
The watched copy's blocks rotate between three writer modes:

- ``full``: the writer as it is;
- ``stub_kernel``: the summary kernel returns at once (its rows hold zeros): what remains is
  the writer's Python (taking messages, batching rows, commits) and its hold on the GIL;
- ``null_writer``: the writer takes each message and drops it (live tensors released at once,
  nothing summarized or stored): what remains is the training thread's own part, its hooks,
  the hand-overs and the wake-ups.

``full`` minus ``stub_kernel`` is the summary kernel's share; ``stub_kernel`` minus
``null_writer`` the rest of the writer's; ``null_writer`` the training thread's. The run it
writes is thrown away (the stub and null modes store wrong rows or none).

    python benchmarks/writer_share.py --model mlp --compiled
    python benchmarks/writer_share.py --model tiny --pairs 30
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _paired import Arm, block_steps, summary  # noqa: E402

MODES = ("full", "stub_kernel", "null_writer")
_mode = ["full"]   # the mode the writer is in now (set between blocks, after a drain)


def _zero_rows(count: int, *outputs) -> list[int]:
    """What the stubbed kernel does: zero the output rows, report every array handled."""
    import numpy as np

    for out in outputs:
        np.asarray(out)[...] = 0
    return [0] * count


class _SwitchedKernel:
    """netlapse._csummary's functions, or (``stub_kernel``) zero rows at once."""

    def __init__(self, real):
        self.real = real

    def summarize_many(self, arrays, stats, hist):
        if _mode[0] == "stub_kernel":
            return _zero_rows(len(arrays), stats, hist)
        return self.real.summarize_many(arrays, stats, hist)

    def summarize_with_delta(self, arrays, prevs, stats, hist, dstats, dhist):
        if _mode[0] == "stub_kernel":
            return _zero_rows(len(arrays), stats, hist, dstats, dhist)
        return self.real.summarize_with_delta(arrays, prevs, stats, hist, dstats, dhist)

    def histogram_many(self, arrays, lo, hi, hist):
        if _mode[0] == "stub_kernel":
            return _zero_rows(len(arrays), hist)
        return self.real.histogram_many(arrays, lo, hi, hist)


def _install_switches() -> None:
    from netlapse import _stats
    from netlapse._record import writer_loop

    real = _stats._kernel()
    if real is None:
        raise SystemExit("the compiled summary kernel is not built: run `make deps-test` "
                         "(or `python setup.py build_ext --inplace`) first.")
    _stats._kernel_module = _SwitchedKernel(real)
    store = writer_loop.WriterLoop._store

    def switched_store(self, group, step, views, check=None, done=None):
        if _mode[0] == "null_writer":
            if done is not None:
                done()
            return None
        return store(self, group, step, views, check, done)

    writer_loop.WriterLoop._store = switched_store


def measure(model: str, variant: str, compiled: bool, threads: int, pairs: int,
            block_s: float, modes: list[str]) -> list[dict]:
    from paired_overhead import build_arms

    _install_switches()
    with tempfile.TemporaryDirectory(prefix="netlapse-writer-share-") as tmp:
        bare0, recorded0, run = build_arms(model, variant, compiled, tmp, threads)
        block = block_steps(bare0.step, block_s)
        arms = {m: (Arm(bare0.step), Arm(recorded0.step, recorded0.after)) for m in modes}
        for j in range(pairs):
            for mode in modes:
                bare, recorded = arms[mode]
                run._pipeline.drain()   # the writer has taken all messages of the last mode
                _mode[0] = mode
                for arm in ((bare, recorded) if j % 2 == 0 else (recorded, bare)):
                    arm.run_block(block)
        _mode[0] = "full"
        run.close()
    rows = []
    for mode in modes:
        bare, recorded = arms[mode]
        ratios = [r / b for r, b in zip(recorded.blocks, bare.blocks)]
        rows.append({"mode": mode, "block": block, **summary(bare, recorded, ratios)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--model", default="mlp", help="mlp, cnn, resnet18, gpt or tiny (default mlp)")
    ap.add_argument("--variant", default="nl_stats",
                    help="what is watched, as in paired_overhead.py: nl_stats, nl_wg, nl_act")
    ap.add_argument("--compiled", action="store_true", help="torch.compile both copies")
    ap.add_argument("--threads", default="1", help="torch threads, or 'all' (default 1)")
    ap.add_argument("--pairs", type=int, default=16, help="pairs of blocks per mode (default 16)")
    ap.add_argument("--block-s", type=float, default=1.0, help="seconds a block lasts, about")
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of: " + ", ".join(MODES))
    args = ap.parse_args(argv)
    from paired_overhead import MODELS, VARIANTS

    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if args.model not in MODELS or args.variant not in VARIANTS or bad:
        ap.error(f"unknown model, variant or mode: {args.model!r}, {args.variant!r}, {bad}")
    if args.pairs < 1 or args.block_s <= 0:
        ap.error("--pairs must be at least 1 and --block-s above 0")
    n = str(os.cpu_count() or 1) if args.threads == "all" else args.threads
    if not n.isdigit() or int(n) < 1:
        ap.error(f"--threads takes a positive count or 'all', got {args.threads!r}")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n   # before torch is imported
    rows = measure(args.model, args.variant, args.compiled, int(n), args.pairs, args.block_s,
                   modes)
    print(f"\n{args.model}{' compiled' if args.compiled else ''}, {args.variant}, {n} torch "
          f"thread(s), {args.pairs} pairs of blocks of {rows[0]['block']} steps per mode\n")
    print("| writer mode | bare step ms | × bare (quartiles) | +us/step "
          "| training-thread CPU × bare | writer CPU ms/step |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['mode']} | {r['bare_step_ms']:.2f} | **{r['ratio']:.3f}** "
              f"({r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}) "
              f"| {(r['ratio'] - 1) * r['bare_step_ms'] * 1e3:.0f} | {r['train_cpu_ratio']:.2f} "
              f"| {r['writer_cpu_ms']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
