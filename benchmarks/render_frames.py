"""Animation rendering speed: frames per second of the blitting FrameRenderer (axes drawn once,
only changing artists redrawn) against drawing every frame from scratch, side by side.

    python benchmarks/render_frames.py [--frames 40]

Records a small rings-like run (2-3-2-1 tanh net, plane_probe with 2,000 points) in a
temporary folder, then renders the hidden-space view's frames both ways and prints the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def record(path: Path, steps: int) -> None:
    import torch
    from torch import nn

    import netlapse as nl
    from netlapse.views import plane_probe

    rng = np.random.default_rng(0)
    ang = rng.uniform(0, 2 * np.pi, 4000)
    r = np.where(np.arange(4000) % 2 == 0, 1.0, 0.5)
    x = (np.stack([r * np.cos(ang), r * np.sin(ang)], 1) + rng.normal(0, 0.005, (4000, 2))).astype(np.float32)
    y = (r == 1.0).astype(np.float32)
    xp, yp, layout = plane_probe(x[:2000], y[:2000])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1), nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)[:, None]
    with nl.Run(path, config={"probe_layout": layout}) as run:
        w = nl.watch(model, run, opt, weights="full", grads=None,
                     probe=(torch.from_numpy(xp), torch.from_numpy(yp)))
        for _ in range(steps):
            opt.zero_grad()
            ((model(xt) - yt) ** 2).mean().backward()
            opt.step()
        w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    args = ap.parse_args()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import netlapse as nl
    from netlapse.render.mpl import FrameRenderer, draw, figure_rgb
    from netlapse.render.spec import frame_spec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rings"
        record(path, args.frames - 1)
        view = nl.views.hidden_space(path)
        specs = [frame_spec(view, i) for i in range(len(view.frames))]

        t = time.perf_counter()
        fr = FrameRenderer()
        for spec in specs:
            fr.render(spec)
        fast = time.perf_counter() - t

        t = time.perf_counter()
        for spec in specs:
            fig, _ = draw(spec)
            FigureCanvasAgg(fig)
            figure_rgb(fig)
        slow = time.perf_counter() - t
    n = len(specs)
    print(f"hidden_space, {n} frames of {specs[0]['size'][0] * 100:.0f}x{specs[0]['size'][1] * 100:.0f} px")
    print(f"  full redraw per frame : {n / slow:6.2f} frames/s")
    print(f"  FrameRenderer (blit)  : {n / fast:6.2f} frames/s")
    print(f"  speed-up              : {slow / fast:6.2f}x")


if __name__ == "__main__":
    main()
