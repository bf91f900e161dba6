"""Time of the per-tensor summaries: numpy path against the compiled kernel (netlapse._csummary).

    python benchmarks/summary_kernel.py            # median of 50 calls each, milliseconds
    python benchmarks/summary_kernel.py --repeats 200
    python benchmarks/summary_kernel.py --torch    # torch imported first, as in a training run

Cases: ``summarize`` of one 784x512 float32 tensor (the MLP's first weight matrix), and
``summarize_many`` of the MLP's 12 tensors of a step (weights and biases of 784-512-512-10,
then their gradients: (512, 784), (512,), (512, 512), (512,), (10, 512), (10,), twice), all
float32 drawn from a normal distribution, and ``histogram_many`` of the same 12 on edges just
outside each one's min/max (what each FSDP2 rank does with its shards). The numpy path is ``_summarize_numpy`` (what runs
without the extension or with NETLAPSE_NO_CKERNEL=1), one call per tensor; it counts the bins
with torch.bincount when torch is already imported (``--torch``), which is faster than numpy's.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from netlapse import _stats

SHAPES = [(512, 784), (512,), (512, 512), (512,), (10, 512), (10,)] * 2


def median_ms(fn, repeats: int) -> float:
    fn()   # warm: scratch buffers, page faults
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--torch", action="store_true", help="import torch first")
    args = ap.parse_args()
    if args.torch:
        import torch  # noqa: F401  (the numpy path then counts bins with torch.bincount)
    if not _stats.kernel_available():
        raise SystemExit("netlapse._csummary is not available (not built, or NETLAPSE_NO_CKERNEL set)")
    rng = np.random.default_rng(0)
    one = rng.normal(size=(784, 512)).astype(np.float32)
    step = [(rng.normal(size=s) * 0.05).astype(np.float32) for s in SHAPES]
    rows = [
        ("summarize 784x512 float32", lambda: _stats._summarize_numpy(one),
         lambda: _stats.summarize(one)),
        (f"summarize_many, MLP's {len(step)} tensors ({sum(a.size for a in step):,} values)",
         lambda: [_stats._summarize_numpy(a) for a in step], lambda: _stats.summarize_many(step)),
    ]
    # FSDP2 (netlapse/_record/torch_dist.py): each rank's shards counted on the edges of the
    # whole tensor's min/max; the numpy path is _stats.histogram per shard
    lo = np.array([a.min() for a in step], np.float64) - 0.01
    hi = np.array([a.max() for a in step], np.float64) + 0.01
    rows.append((f"histogram_many on given edges, the same {len(step)} tensors",
                 lambda: [_stats.histogram(a.reshape(-1).astype(np.float64), lo[i], hi[i])
                          for i, a in enumerate(step)],
                 lambda: _stats.histogram_many(step, lo, hi)))
    n = sum(a.size for a in step)
    print(f"median of {args.repeats} calls, ms" + (" (torch imported)" if args.torch else ""))
    print(f"{'case':<58} {'numpy':>8} {'kernel':>8} {'speed-up':>9}   per value")
    for name, numpy_fn, kernel_fn in rows:
        t_np, t_k = median_ms(numpy_fn, args.repeats), median_ms(kernel_fn, args.repeats)
        size = one.size if name.startswith("summarize 784") else n
        print(f"{name:<58} {t_np:8.3f} {t_k:8.3f} {t_np / t_k:8.1f}x   "
              f"kernel {t_k * 1e6 / size:.2f} ns a value")


if __name__ == "__main__":
    main()
