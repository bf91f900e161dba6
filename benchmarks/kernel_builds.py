"""Two builds of the summary kernel (netlapse._csummary) side by side, on a model's tensors.

For work on netlapse/_csummary.c: is a change faster where the writer runs it, and are its
results the same? Both builds are loaded into one process (each is the module
``_csummary``, loaded from its own file) and called in turn on the same float32 tensors, the
parameters of a model of benchmarks/overhead.py, with the caches evicted before every call
(a training step evicts them before the writer reads a step's tensors). Two calls are timed:

- ``summarize_many``: the stats and histograms of every tensor (weights, or grads);
- ``summarize_with_delta``: the same plus ``updates/`` (each tensor minus its previous copy,
  summarized, then the copy refreshed), what the writer does for weights by default.

The histograms, min, max, zero fraction and non-finite counts of both builds must be equal
and the other stats equal to rounding (1e-12 relative); the script stops if they are not.

    git worktree add /tmp/old HEAD && (cd /tmp/old && python setup.py build_ext --inplace)
    python setup.py build_ext --inplace      # this tree's build, with the change
    python benchmarks/kernel_builds.py --against /tmp/old/netlapse/_csummary*.so --model resnet18
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

EVICT_BYTES = 64 << 20   # more than the last-level cache of the machines this runs on


def load_build(path: str):
    """The kernel built at ``path`` (a ``_csummary*.so``/``.pyd``) as its own module object."""
    if not Path(path).is_file():
        raise SystemExit(f"--against {path}: no such file. Build the other tree's kernel "
                         "(python setup.py build_ext --inplace) and pass its netlapse/_csummary*.so")
    spec = importlib.util.spec_from_file_location("_csummary", path)
    if spec is None or spec.loader is None:   # not an extension file name (.so, .pyd)
        raise SystemExit(f"--against {path} is not a Python extension module (a _csummary*.so "
                         "or .pyd file)")
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"--against {path} is not a build of netlapse._csummary ({exc})") from None
    if not all(hasattr(module, f) for f in ("summarize_many", "summarize_with_delta")):
        raise SystemExit(f"--against {path} is not a build of netlapse._csummary (no "
                         "summarize_many / summarize_with_delta)")
    return module


def model_tensors(name: str) -> list:
    """The parameters of ``benchmarks/overhead.py``'s model ``name`` as flat float32 arrays."""
    from overhead import _model

    model, _ = _model(name)
    return [p.detach().numpy().reshape(-1).copy() for p in model.parameters()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--against", required=True,
                    help="the other build's extension file (e.g. an older tree's "
                         "netlapse/_csummary.cpython-311-x86_64-linux-gnu.so)")
    ap.add_argument("--model", default="resnet18", choices=("mlp", "cnn", "resnet18", "gpt", "tiny"),
                    help="a model of benchmarks/overhead.py whose parameters are summarized "
                         "(default resnet18)")
    ap.add_argument("--repeats", type=int, default=20, help="calls of each build (default 20)")
    args = ap.parse_args(argv)
    from netlapse import _stats

    if not _stats.kernel_available():
        raise SystemExit("this tree's netlapse._csummary is not built: run "
                         "`python setup.py build_ext --inplace` first")
    builds = {"this tree": _stats._kernel(), "against": load_build(args.against)}
    tensors = model_tensors(args.model)
    rng = np.random.default_rng(0)
    prevs = [t + (rng.standard_normal(t.size) * 1e-4).astype(np.float32) for t in tensors]
    k = len(tensors)
    evict = np.ones(EVICT_BYTES // 4, np.float32)
    outs = {b: (np.zeros(k * 8), np.zeros(k * 64, np.int64), np.zeros(k * 8),
                np.zeros(k * 64, np.int64)) for b in builds}
    times = {(b, call): [] for b in builds for call in ("summarize_many", "summarize_with_delta")}
    for _ in range(args.repeats):
        for b, kernel in builds.items():
            stats, hist, dstats, dhist = outs[b]
            evict.sum()
            t0 = time.perf_counter()
            kernel.summarize_many(tensors, stats, hist)
            times[(b, "summarize_many")].append(time.perf_counter() - t0)
            copies = [p.copy() for p in prevs]
            evict.sum()
            t0 = time.perf_counter()
            kernel.summarize_with_delta(tensors, copies, stats, hist, dstats, dhist)
            times[(b, "summarize_with_delta")].append(time.perf_counter() - t0)
    mine, other = outs["this tree"], outs["against"]
    for i, what in ((1, "histograms"), (3, "update histograms")):
        if not np.array_equal(mine[i], other[i]):
            raise SystemExit(f"the two builds' {what} differ")
    for i in (0, 2):
        a, b = mine[i].reshape(k, 8), other[i].reshape(k, 8)
        if not (np.array_equal(a[:, [2, 3, 6, 7]], b[:, [2, 3, 6, 7]], equal_nan=True)
                and np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)):
            raise SystemExit("the two builds' stats differ")
    values = sum(t.size for t in tensors)
    print(f"{args.model}: {k} float32 tensors, {values / 1e6:.2f} M values; median of "
          f"{args.repeats} calls each, caches evicted before each; outputs identical\n")
    print("| call | this tree ms | against ms | this tree × against |")
    print("| --- | --- | --- | --- |")
    for call in ("summarize_many", "summarize_with_delta"):
        mine_ms = float(np.median(times[("this tree", call)])) * 1e3
        other_ms = float(np.median(times[("against", call)])) * 1e3
        print(f"| {call} | {mine_ms:.2f} | {other_ms:.2f} | {mine_ms / other_ms:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
