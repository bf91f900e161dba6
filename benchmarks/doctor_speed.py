"""How long ``nl.diagnose`` takes on a long run: 100,000 steps, 50 streams (target: <= 2 s).

The run is built quickly by writing stats rows straight through the store writer (the same
arrays and commit protocol a training run produces): 10 dense layers of 64x64, each with
``weights``, ``grads``, ``updates`` of the kernel, ``grads`` of the bias, and a ReLU
activation stream with per-unit activity (64 units) — 50 streams — plus a ``loss`` metric,
every step for 100,000 steps. The statistics drift slowly, as in a healthy run; one layer's
units die at step 60,000 so the instruments have something to find.

    python benchmarks/doctor_speed.py [--steps 100000] [--out /tmp/doctor-speed]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np


def build(path: Path, steps: int, layers: int = 10, width: int = 64, block: int = 20_000) -> None:
    from netlapse._stats import HIST_BINS, N_STATS
    from netlapse.store.layout import FORMAT_VERSION  # noqa: F401 - the format written
    from netlapse.store.manifest import Manifest, new_manifest
    from netlapse.store.writer import StoreWriter

    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    manifest = Manifest(path, new_manifest(path.name, {"bench": "doctor_speed"}))
    params, modules = [], []
    for i in range(layers):
        params += [{"name": f"fc{i}.weight", "shape": [width, width], "dtype": "float32",
                    "numel": width * width, "trainable": True},
                   {"name": f"fc{i}.bias", "shape": [width], "dtype": "float32",
                    "numel": width, "trainable": True}]
        modules += [{"name": f"fc{i}", "type": "Linear", "params": width * width + width, "leaf": True},
                    {"name": f"act{i}", "type": "ReLU", "params": 0, "leaf": True}]
    manifest.update(model={"type": "MLP", "parameters": params, "modules": modules},
                    framework={"name": "bench"}, status="finished")
    writer = StoreWriter(path, manifest)
    rng = np.random.default_rng(0)
    hist = np.zeros((block, HIST_BINS), np.int64)
    hist[:, HIST_BINS // 2] = 1
    for start in range(0, steps, block):
        n = min(block, steps - start)
        st = np.arange(start + 1, start + n + 1, dtype=np.int64)
        drift = np.exp(-st / steps)[:, None]
        for i in range(layers):
            def stats(scale):
                s = np.zeros((n, N_STATS))
                s[:, 1] = scale[:, 0]
                s[:, 2], s[:, 3] = -3 * scale[:, 0], 3 * scale[:, 0]
                s[:, 4] = scale[:, 0] * width
                s[:, 5] = 0.8 * scale[:, 0]
                return s
            w = stats(0.1 + 0.0 * drift)
            g = stats(1e-2 * drift * (1 + 0.1 * rng.random((n, 1))))
            u = stats(1e-4 * drift * (1 + 0.1 * rng.random((n, 1))))
            meta = {"capture": "stats", "shape": [width, width], "dtype": "float32", "every": 1}
            writer.append_stream(f"weights/fc{i}.weight", {**meta, "kind": "weights"}, st, w, hist[:n], None)
            writer.append_stream(f"grads/fc{i}.weight", {**meta, "kind": "grads"}, st, g, hist[:n], None)
            writer.append_stream(f"updates/fc{i}.weight", {**meta, "kind": "updates", "span": 1},
                                 st, u, hist[:n], None)
            writer.append_stream(f"grads/fc{i}.bias", {**meta, "kind": "grads", "shape": [width]},
                                 st, stats(1e-2 * drift), hist[:n], None)
            active = (rng.random((n, width)) * 0.5 + 0.25).astype(np.float32)
            if i == 4:
                active[st > int(0.6 * steps), : width * 3 // 4] = 0   # 3/4 of the units die
            writer.append_stream(
                f"activations/act{i}",
                {"kind": "activations", "capture": "stats", "shape": [128, width], "dtype": "float32",
                 "every": 1, "units": {"axis": 1, "count": width, "act": "relu"}},
                st, stats(0.5 + 0 * drift), hist[:n], None, extras={"active": active})
        writer.append_metrics(st, {"loss": 2.0 * drift[:, 0] + 0.01 * rng.random(n)})
        writer.commit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--out", default="/tmp/netlapse-doctor-speed")
    ap.add_argument("--reuse", action="store_true", help="time an existing run at --out")
    args = ap.parse_args()
    import netlapse as nl

    path = Path(args.out)
    t0 = time.perf_counter()
    if not args.reuse:
        build(path, args.steps)
    built = time.perf_counter() - t0
    r = nl.open_run(path)
    print(f"run: {len(r.streams())} streams x {args.steps:,} steps, built in {built:.1f} s")
    times, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        report = nl.diagnose(path)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(f"nl.diagnose: {min(times):.2f} s wall best of 3 ({', '.join(f'{t:.2f}' for t in times)}), "
          f"{min(cpu):.2f} s CPU (all threads); target <= 2 s wall: "
          f"{'met' if min(times) <= 2 else 'NOT met'} at this load")
    print("findings:", [(f.kind, f.severity, f.first_step, f.streams) for f in report])
    print("load:", os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
