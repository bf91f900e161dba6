"""Inline display (IPython's display protocol): what the HTML shows equals what the store holds."""

import html
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import netlapse as nl
from netlapse._stats import STAT_NAMES


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("disp") / "run"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    with nl.Run(path, config={"lr": 0.2}) as run:
        nl.watch(model, run, opt, weights="full", grads="stats")
        for _ in range(12):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            run.log(loss=loss.item(), acc=(model(x).argmax(1) == y).float().mean().item())
    return path


def _polyline(svg: str) -> np.ndarray:
    pts = re.search(r'points="([^"]+)"', svg).group(1)
    return np.array([[float(v) for v in p.split(",")] for p in pts.split()])


def test_run_summary_shows_status_streams_and_metric_sparklines(run_path):
    r = nl.open_run(run_path)
    page = r._repr_html_()
    assert "finished" in page and f"last step {r.last_step()}" in page
    for name in r.streams():
        s = r[name]
        row = re.search(rf"<tr><td[^>]*>{re.escape(name)}</td>(.*?)</tr>", page).group(1)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert cells[:5] == [s.kind, s.capture, "×".join(map(str, s.shape)), s.dtype,
                             f"{s.steps[0]}..{s.steps[-1]} ({len(s.steps)})"]
        assert cells[5].endswith("KB")
    metrics = r.metrics
    for col in ("loss", "acc"):
        row = re.search(rf"<tr><td[^>]*>{col}</td>(.*?)</tr>", page).group(1)
        pts = _polyline(row)
        vals = metrics[col].to_numpy()
        assert len(pts) == len(vals)
        # the line's heights are the metric's values, mapped to 2..24 px (y grows downwards)
        lo, hi = vals.min(), vals.max()
        back = lo + (24 - pts[:, 1]) / 22 * (hi - lo)
        np.testing.assert_allclose(back, vals, atol=(hi - lo) * 0.01)
        assert f"last <b>{vals[-1]:.4g}</b>" in row


def test_open_run_summary_of_a_run_being_written_shows_its_committed_steps(tmp_path):
    run = nl.Run(tmp_path / "r")
    for step in range(3):
        run.record_array("weights/w", np.full((2, 3), step, np.float32), step=step)
    run.flush()
    page = nl.open_run(tmp_path / "r")._repr_html_()
    assert "running" in page and "0..2 (3)" in page
    inline = run._repr_html_()                  # the Run itself: the same summary, with its step
    assert "running" in inline and "0..2 (3)" in inline and "step 0" in inline
    run.close()
    assert "finished" in run._repr_html_()


def test_stream_shows_name_shape_steps_and_last_stats(run_path):
    s = nl.open_run(run_path)["grads/0.weight"]
    page = s._repr_html_()
    assert "grads/0.weight" in page and "4×12" in page and f"steps 1..{s.steps[-1]}" in page
    shown = re.findall(r"<td[^>]*>(\w+)<br><b>([^<]+)</b></td>", page)
    assert [n for n, _ in shown] == list(STAT_NAMES)
    np.testing.assert_allclose([float(v) for _, v in shown], s.stats_array[-1], rtol=1e-3, atol=1e-12)
    counts = s.histograms.counts[-1]
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', page)]
    np.testing.assert_allclose(heights, (counts / counts.max() * 22)[counts > 0], atol=0.01)


def test_animation_shows_the_player_inline_and_a_save_hint_past_the_limit(run_path):
    anim = nl.animate.weight_images(run_path, "weights/0.weight", max_frames=6)
    page = anim._repr_html_()
    assert page.startswith("<iframe srcdoc=") and 'data-netlapse-player="6"' in page
    src = html.unescape(re.search(r'srcdoc="([^"]*)"', page).group(1))
    data = re.search(r'<script type="application/json" id="netlapse-data">(.*?)</script>', src, re.S)
    doc = json.loads(data.group(1).replace("<\\/", "</"))
    assert doc["steps"] == [int(s) for s in anim.frames]
    from netlapse.render.html import decode_array

    first = doc["frames"][0]["panels"][0]["items"][0]["data"]
    img = decode_array(doc["arrays"][first["$a"]])
    expect = nl.open_run(run_path)["weights/0.weight"].at(int(anim.frames[0]))[0].reshape(img.shape)
    span = expect.max() - expect.min()
    np.testing.assert_allclose(img, expect, atol=span / 254 + 1e-7)   # 8-bit image cells
    small = nl.animate.weight_images(run_path, "weights/0.weight", max_frames=6)
    small.embed_limit_mb = 0.001
    note = small._repr_html_()
    assert "<iframe" not in note and "over the inline limit of 0.001 MB" in note
    assert 'anim.save("animation.html")' in note


def test_import_netlapse_imports_no_ipython():
    code = "import sys, netlapse; print('IPython' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
