"""Dashboard speed in headless Debian chromium: first paint of a big run's page, and scrubbing.

The run: 100,000 steps, 20 streams (19 stats streams at every step, and ``weights/fc1.weight``,
a 512x784 matrix, i.e. 784 inputs x 512 units, recorded in full every 1,000 steps), two metrics
at every step. It is written straight through the store's writer (synthetic values) so that
building it takes seconds.

Measured:
- first paint: from navigation to every panel of the run page drawn (metrics, weight image,
  distribution, layer profile, layer table), cold (fresh server, nothing cached) and warm;
- scrubbing: moving the slider over the weight matrix's recorded steps, each frame fetched and
  drawn before the next move (frames per second).

    PYTHONPATH=. python benchmarks/ui_speed.py [--dir /tmp/netlapse-ui-bench] [--frames 100]

Targets (issue 4): first paint <= 1.5 s, scrubbing >= 20 fps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

STEPS = 100_000
FULL_EVERY = 1_000
SHAPE = (512, 784)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def build_run(path: Path) -> None:
    from netlapse._stats import HIST_BINS, summarize
    from netlapse.store.manifest import Manifest, new_manifest
    from netlapse.store.writer import StoreWriter

    if (path / "commit.json").exists() and json.loads((path / "run.json").read_text())["status"] == "finished":
        return
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    t0 = time.perf_counter()
    manifest = Manifest(path, new_manifest(path.name, {"steps": STEPS, "kind": "ui benchmark"}))
    manifest.update()
    writer = StoreWriter(path, manifest)
    rng = np.random.default_rng(0)
    names = [f"{kind}/layer{i}" + (".weight" if kind != "activations" else "")
             for kind in ("weights", "grads", "activations") for i in range(7)][:19]
    batch = 20_000
    centres = np.linspace(-3, 3, HIST_BINS)
    for start in range(0, STEPS, batch):
        steps = np.arange(start, start + batch, dtype=np.int64)
        for k, name in enumerate(names):
            walk = 1.0 + 0.3 * np.sin(steps / (3000.0 + 500 * k)) + 0.01 * rng.standard_normal(batch)
            stats = np.zeros((batch, 8))
            stats[:, 0] = 0.01 * walk
            stats[:, 1] = walk
            stats[:, 2] = -3 * walk
            stats[:, 3] = 3 * walk
            stats[:, 4] = 30 * walk
            stats[:, 5] = 0.8 * walk
            hist = (1000 * np.exp(-centres ** 2 / 2)[None, :] * (1 + 0.1 * rng.random((batch, HIST_BINS))))
            meta = {"kind": name.split("/")[0], "capture": "stats", "shape": [128, 128], "dtype": "float32"}
            writer.append_stream(name, meta, steps, stats, hist.astype(np.int64), None)
        loss = 2.0 * np.exp(-steps / 20000) + 0.05 * rng.random(batch)
        writer.append_metrics(steps, {"loss": loss, "acc": 1 - loss / 2.2})
    w_steps = np.arange(0, STEPS, FULL_EVERY, dtype=np.int64)
    base = rng.standard_normal(SHAPE).astype(np.float32) * 0.05
    grid = np.linspace(0, 2 * np.pi, 28, dtype=np.float32)
    pattern = (np.sin(grid[:, None] * (1 + np.arange(SHAPE[0])[:, None, None] % 5)) *
               np.cos(grid[None, :] * 2)).reshape(SHAPE[0], -1)[:, : SHAPE[1]].astype(np.float32)
    meta = {"kind": "weights", "capture": "full", "shape": list(SHAPE), "dtype": "float32"}
    for chunk in np.array_split(w_steps, 10):
        values = np.stack([base + pattern * (0.002 * s / FULL_EVERY) for s in chunk]).astype(np.float32)
        summ = [summarize(v) for v in values]
        writer.append_stream("weights/fc1.weight", meta, chunk, np.stack([a for a, _ in summ]),
                             np.stack([b for _, b in summ]), values)
    writer.commit()
    manifest.update(status="finished")
    print(f"built {path}: {STEPS:,} steps, {len(names) + 1} streams in {time.perf_counter() - t0:.1f} s")


FIRST_PAINT_JS = """async () => {
  const t0 = performance.now();
  const done = () => document.body && document.body.dataset.ready === 'run' &&
    [...document.querySelectorAll('[data-panel]')].every(p => p.dataset.drawn !== undefined);
  while (!done()) await new Promise(r => requestAnimationFrame(r));
  return performance.now();
}"""

SCRUB_JS = """async (steps) => {
  const slider = document.querySelector('#slider');
  const canvas = document.querySelector('#weight-canvas');
  const t0 = performance.now();
  for (const s of steps) {
    slider.value = s;
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    while (canvas.dataset.step !== String(s)) await new Promise(r => setTimeout(r, 0));
  }
  return (performance.now() - t0) / 1000;
}"""


def first_paint(browser, url: str) -> float:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(url + "#/run/bench", wait_until="commit")
    end = page.evaluate(FIRST_PAINT_JS)   # performance.now() counts from navigation start
    ctx.close()
    return end / 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="/tmp/netlapse-ui-bench", help="where the big run is built (reused)")
    ap.add_argument("--frames", type=int, default=100, help="slider moves to time")
    ap.add_argument("--shot", default="test-artifacts/ui/bench-run.png", help="screenshot of the run page")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from netlapse.ui import Dashboard

    root = Path(args.dir)
    build_run(root / "bench")
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        with Dashboard(root, port=0) as dash:           # a fresh server: nothing cached
            cold = first_paint(browser, dash.url)
            warm = [first_paint(browser, dash.url) for _ in range(3)]
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            page.goto(dash.url + "#/run/bench")
            page.evaluate(FIRST_PAINT_JS)
            steps = [int(s) for s in np.arange(0, STEPS, FULL_EVERY)[: args.frames]]
            page.evaluate(SCRUB_JS, steps[:5])           # warm-up
            rates = [len(steps) / page.evaluate(SCRUB_JS, s) for s in (steps, steps[::-1], steps)]
            fps = statistics.median(rates)
            if args.shot:
                Path(args.shot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.shot, full_page=True)
            ctx.close()
        browser.close()
    results = {"first_paint_cold_s": cold, "first_paint_warm_s": statistics.median(warm), "scrub_fps": fps,
               "scrub_fps_runs": rates}
    print(f"run: {STEPS:,} steps, 20 streams, weights/fc1.weight {SHAPE[0]}x{SHAPE[1]} float32 "
          f"({len(steps)} recorded steps scrubbed)")
    print(f"first paint, cold server : {cold:6.2f} s   (target <= 1.5 s: {1.5 / cold:4.1f}x margin)")
    print(f"first paint, warm (median of 3): {statistics.median(warm):6.2f} s")
    print(f"scrubbing 784x512 weights: {fps:6.1f} frames/s, median of forward, backward, forward "
          f"(target >= 20: {fps / 20:4.1f}x)")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(json.dumps(results))
    return 0 if cold <= 1.5 and fps >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
