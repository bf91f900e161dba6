"""Views and nl.plot: the plotted data equals what the store holds (read back from the artists)."""
import numpy as np
import pytest
import torch

import netlapse as nl
from netlapse import views as V
from netlapse.errors import NetlapseError
from view_runs import record_curve, record_linear, record_rings

pytest.importorskip("matplotlib")
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("views")
    rings_model, rings_probe = record_rings(d / "rings", steps=8)
    curve_model = record_curve(d / "curve", steps=6)
    record_curve(d / "curve6", hidden=(6,), steps=4)
    lin_model = record_linear(d / "lin", steps=5)
    return {"dir": d, "rings": d / "rings", "rings_model": rings_model, "rings_probe": rings_probe,
            "curve": d / "curve", "curve_model": curve_model, "curve6": d / "curve6",
            "lin": d / "lin", "lin_model": lin_model}


def _no_pyplot_figures():
    import matplotlib.pyplot as plt

    return plt.get_fignums() == []


def test_probe_layout_rows():
    x = np.random.default_rng(0).uniform(-1, 1, (7, 2))
    xp, yp, layout = V.plane_probe(x, np.arange(7) % 2, lim=2.0, lines=3, points_per_line=4, resolution=5)
    assert layout == {"data": [0, 7], "grid_lines": [7, 31, 6, 4], "plane": [31, 56, 5], "lim": 2.0}
    assert xp.dtype == np.float32 and xp.shape == (56, 2) and yp.shape == (56, 1)
    np.testing.assert_array_equal(xp[:7], x.astype(np.float32))
    np.testing.assert_array_equal(yp[:7, 0], np.arange(7) % 2)
    assert np.isnan(yp[7:]).all()
    lines = xp[7:31].reshape(6, 4, 2)
    np.testing.assert_allclose(lines[0, :, 0], -2.0)          # first vertical line: x fixed
    np.testing.assert_allclose(lines[3, :, 1], -2.0)          # first horizontal line: y fixed
    plane = xp[31:].reshape(5, 5, 2)
    np.testing.assert_allclose(plane[0, :, 1], -2.0)          # row 0 at y = -lim
    np.testing.assert_allclose(plane[:, 0, 0], -2.0)
    xc, yc, lc = V.curve_probe([2.0, -1.0, 0.5], [4.0, 1.0, 0.25])
    assert lc == {"curve": [0, 3]}
    np.testing.assert_array_equal(xc[:, 0], [-1.0, 0.5, 2.0])
    np.testing.assert_array_equal(yc[:, 0], [1.0, 0.25, 4.0])


def test_hidden_space_matches_store_and_model(runs):
    r = nl.open_run(runs["rings"])
    model = runs["rings_model"]
    xp, yp, layout = runs["rings_probe"]
    fig = nl.plot.hidden_space(runs["rings"], max_points=None)
    left, right = fig.axes[0], fig.axes[1]
    stored = r["probe/3"].at(-1)
    # independent: the trained model's 2-unit tanh layer on the probe
    with torch.no_grad():
        h = model[:4](torch.from_numpy(xp)).numpy()
    np.testing.assert_allclose(stored, h, rtol=1e-5, atol=1e-6)
    d0, d1 = layout["data"]
    scatter = [c for c in left.collections if isinstance(c, PathCollection)][0]
    np.testing.assert_allclose(scatter.get_offsets(), stored[d0:d1])
    grid = [c for c in left.collections if isinstance(c, LineCollection)][0]
    g0, g1, n_lines, ppl = layout["grid_lines"]
    segs = np.stack(grid.get_segments())
    np.testing.assert_allclose(segs, stored[g0:g1].reshape(n_lines, ppl, 2))
    # the boundary from the recorded head weights: a*h1 + b*h2 + c = 0 at both ends
    (line,) = [ln for ln in left.lines if ln.get_label() == "decision boundary"]
    w = r["weights/4.weight"].at(-1).ravel()
    c = r["weights/4.bias"].at(-1).ravel()[0]
    np.testing.assert_allclose(w, model[4].weight.detach().numpy().ravel())
    ends = line.get_xydata()
    assert np.isfinite(ends).all()
    np.testing.assert_allclose(ends @ w + c, 0.0, atol=1e-9)
    # decision regions: the output layer's probe output on the plane rows
    p0, p1, res = layout["plane"]
    np.testing.assert_allclose(right.images[0].get_array(), r["probe/5"].at(-1)[p0:p1, 0].reshape(res, res))
    np.testing.assert_allclose(right.images[0].get_extent(), [-1, 1, -1, 1])
    assert _no_pyplot_figures()


def test_hidden_space_frames_and_defaults(runs):
    v = V.hidden_space(runs["rings"], steps="0:8:3", max_points=20, seed=1)
    assert v.layer == "3" and v.head == "4" and v.output_layer == "5"
    np.testing.assert_array_equal(v.steps, [0, 4, 8])
    r = nl.open_run(runs["rings"])
    assert v.points.shape == (3, 20, 2)
    for t, s in enumerate(v.steps):
        w = r["weights/4.weight"].at(int(s)).ravel()
        np.testing.assert_allclose(v.coef[t], [w[0], w[1], r["weights/4.bias"].at(int(s))[0]])
    v2 = V.hidden_space(runs["rings"], steps="0:8:3", max_points=20, seed=1)
    np.testing.assert_array_equal(v.points, v2.points)     # the sample is fixed by the seed
    with pytest.raises(NetlapseError, match="2 units"):
        V.hidden_space(runs["rings"], layer="0")


def test_weight_images_torch_and_keras_layout(runs, tmp_path):
    r = nl.open_run(runs["lin"])
    w = r["weights/0.weight"].at(-1)                       # torch (out=4, in=16)
    np.testing.assert_allclose(w, runs["lin_model"][0].weight.detach().numpy())
    fig = nl.plot.weight_images(runs["lin"], "weights/0.weight", step=-1)
    axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in axes] == ["0", "1", "2", "3"]
    m = np.abs(w).max()
    for u, ax in enumerate(axes):
        np.testing.assert_allclose(ax.images[0].get_array(), w[u].reshape(4, 4))
        np.testing.assert_allclose(ax.images[0].get_clim(), (-m, m), rtol=1e-6)
    # a Keras kernel is (in, out): the default units axis is 1 and the images are the same
    with nl.Run(tmp_path / "k") as run:
        run.record_array("weights/dense.kernel", w.T, step=0)
    v = V.weight_images(tmp_path / "k", "weights/dense.kernel", step=0)
    assert v.units_axis == 1
    np.testing.assert_allclose(v.images[0], w.reshape(4, 4, 4))
    # over time: one colour scale over every frame
    anim = V.weight_images(runs["lin"], "weights/0.weight", None)
    hist = r["weights/0.weight"].history()
    np.testing.assert_array_equal(anim.steps, r["weights/0.weight"].steps)
    assert anim.vmax == pytest.approx(np.abs(hist).max())
    assert V.weight_images.__module__.endswith("weight_images")
    assert V.weight_images(runs["lin"], "weights/0.weight", units_axis=1).images.shape == (1, 16, 2, 2)


def test_trajectories_lines_are_the_stored_weights(runs):
    r = nl.open_run(runs["rings"])
    fig = nl.plot.trajectories(runs["rings"], "weights/0.weight")
    lines = [ln for ln in fig.axes[0].lines if not ln.get_label().startswith("_")]
    hist = r["weights/0.weight"].history().reshape(len(r["weights/0.weight"].steps), -1)
    assert len(lines) == 6                                  # 3x2 weight: all elements
    for k, ln in enumerate(lines):
        xy = ln.get_xydata()
        np.testing.assert_array_equal(xy[:, 0], r["weights/0.weight"].steps)
        np.testing.assert_allclose(xy[:, 1], hist[:, k])
    assert lines[3].get_label() == "0.weight[1,1]"
    big = V.trajectories(runs["rings"], "probe/0", sample=5, seed=3)
    again = V.trajectories(runs["rings"], "probe/0", sample=5, seed=3)
    np.testing.assert_array_equal(big.elements, again.elements)
    assert len(big.elements) == 5


def test_layer_profile_from_stats_and_probe(runs):
    r = nl.open_run(runs["rings"])
    fig = nl.plot.layer_profile(runs["rings"], step=-1)
    grad_ax, act_ax = fig.axes[:2]
    assert grad_ax.get_yscale() == "log"
    (g,) = grad_ax.lines
    (a,) = act_ax.lines
    step = int(r["grads/0.weight"].steps[-1])
    want_g = [r[f"grads/{n}.weight"].stats.set_index("step").loc[step, "mean_abs"] for n in ("0", "2", "4")]
    want_a = [r[f"activations/{n}"].stats.set_index("step").loc[step, "mean_abs"] for n in ("1", "3", "5")]
    np.testing.assert_allclose(g.get_xydata()[:, 1], want_g)
    np.testing.assert_allclose(a.get_xydata()[:, 1], want_a)
    np.testing.assert_array_equal(g.get_xydata()[:, 0], [1, 2, 3])
    assert [t.get_text() for t in grad_ax.get_xticklabels()] == ["0", "2", "4"]
    v = V.layer_profile(runs["rings"], step=-1, source="probe", example=3)
    for i, n in enumerate(("1", "3", "5")):
        assert v.act[0, i] == pytest.approx(np.abs(r[f"probe/{n}"].at(int(v.steps[0]))[3]).mean())
    many = V.layer_profile(runs["rings"], step=None)
    np.testing.assert_array_equal(many.steps, r["grads/0.weight"].steps)


def test_distributions_rebin_and_lines(runs):
    r = nl.open_run(runs["rings"])
    s = r["weights/0.weight"]
    v = V.distributions(runs["rings"], "weights/0.weight", bins=50)
    np.testing.assert_allclose(v.density.sum(axis=1), 1.0)
    np.testing.assert_allclose(v.lines["min"], s.stats["min"])
    np.testing.assert_allclose(v.lines["max"], s.stats["max"])
    fig = nl.plot.distributions(runs["rings"], "weights/0.weight", bins=50)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), v.density.T)
    by_label = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_allclose(by_label["max"].get_xydata()[:, 1], s.stats["max"])
    np.testing.assert_allclose(by_label["p50"].get_xydata()[:, 1], v.lines["p50"])
    # percentiles read off a fine histogram are close to numpy's on the same values
    from netlapse._stats import summarize
    x = np.random.default_rng(0).normal(size=20000)
    stats, hist = summarize(x)
    got = V.distributions.__globals__["hist_percentiles"](hist, stats[2], stats[3], [5, 50, 95])
    width = (stats[3] - stats[2]) / 64
    np.testing.assert_allclose(got, np.percentile(x, [5, 50, 95]), atol=width)


def test_function_fit_and_compare(runs):
    r = nl.open_run(runs["curve"])
    model = runs["curve_model"]
    fig = nl.plot.function_fit(runs["curve"])
    by_label = {ln.get_label(): ln for ln in fig.axes[0].lines}
    x = r["inputs/probe"].at(0)[:, 0]
    assert np.all(np.diff(x) > 0)
    np.testing.assert_allclose(by_label["target"].get_xydata()[:, 1], r["inputs/probe_target"].at(0)[:, 0])
    out = by_label["output (2)"].get_xydata()
    np.testing.assert_allclose(out[:, 0], x)
    np.testing.assert_allclose(out[:, 1], r["probe/2"].at(-1)[:, 0])
    with torch.no_grad():
        np.testing.assert_allclose(out[:, 1], model(torch.from_numpy(x[:, None])).numpy()[:, 0], rtol=1e-5, atol=1e-6)
    c = V.compare([runs["curve"], runs["curve6"]], "function_fit", names=["1-3-1", "1-6-1"])
    np.testing.assert_array_equal(c.steps, np.arange(7))
    # the shorter run (4 steps) holds its last frame on the shared axis
    np.testing.assert_array_equal(c.index[:, 1], [0, 1, 2, 3, 4, 4, 4])
    fig = nl.plot.compare([runs["curve"], runs["curve6"]], "function_fit", step=5, names=["1-3-1", "1-6-1"])
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["1-3-1", "1-6-1"]
    r6 = nl.open_run(runs["curve6"])
    out6 = [ln for ln in fig.axes[1].lines if ln.get_label().startswith("output")][0]
    np.testing.assert_allclose(out6.get_xydata()[:, 1], r6["probe/2"].at(4)[:, 0])
    assert _no_pyplot_figures()


def test_bad_input_errors_name_the_fix(runs):
    with pytest.raises(NetlapseError, match="A:B:N"):
        V.function_fit(runs["curve"], steps="1:2:3:4")
    with pytest.raises(NetlapseError, match="no data at step"):
        V.weight_images(runs["lin"], "weights/0.weight", step=999)
    with pytest.raises(NetlapseError, match="full"):
        V.weight_images(runs["rings"], "grads/0.weight")
    with pytest.raises(NetlapseError, match="no view"):
        V.compare([runs["curve"]], "hiden_space")


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import sys

    from netlapse.render.mpl import require_matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"netlapse\[viz\]"):
        require_matplotlib()


def test_views_plot_animate_import_no_plotting_library():
    import subprocess
    import sys

    code = ("import sys, netlapse as nl; nl.views; nl.plot; nl.animate; nl.render; "
            "print(','.join(m for m in ('matplotlib', 'PIL', 'imageio', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_keras_style_names_are_found(tmp_path):
    from netlapse.views.hidden_space import default_head
    from netlapse.views.layer_profile import weight_layers

    rng = np.random.default_rng(0)
    k1, k2 = rng.normal(size=(3, 2)), rng.normal(size=(2, 1))
    with nl.Run(tmp_path / "k") as run:
        for step in (1, 2):
            run.record_array("grads/dense/kernel", k1 * step, step=step, full=False)
            run.record_array("grads/dense_1/kernel", k2 * step, step=step, full=False)
            run.record_array("weights/dense_1/kernel", k2, step=step)
            run.record_array("weights/dense_1/bias", np.array([0.5]), step=step)
            run.record_array("activations/dense", k1 @ k2, step=step, full=False)
            run.record_array("activations/dense_1", k2, step=step, full=False)
    r = nl.open_run(tmp_path / "k")
    assert weight_layers(r) == [("dense", "grads/dense/kernel"), ("dense_1", "grads/dense_1/kernel")]
    v = V.layer_profile(r, step=2)
    np.testing.assert_allclose(v.grad[0], [np.abs(2 * k1).mean(), np.abs(2 * k2).mean()])
    np.testing.assert_allclose(v.act[0], [np.abs(k1 @ k2).mean(), np.abs(k2).mean()])
    assert default_head(r, "dense") == "dense_1"


def test_compare_weight_images_share_one_colour_scale(runs, tmp_path):
    record_linear(tmp_path / "lin2", steps=2, n_in=16, n_out=4)
    c = V.compare([runs["lin"], tmp_path / "lin2"], "weight_images", stream="weights/0.weight", step=None)
    top = max(np.abs(nl.open_run(p)["weights/0.weight"].history()).max() for p in (runs["lin"], tmp_path / "lin2"))
    assert [v.vmax for v in c.views] == [pytest.approx(top)] * 2
    fig = nl.plot.compare([runs["lin"], tmp_path / "lin2"], "weight_images", stream="weights/0.weight")
    shown = [ax for ax in fig.axes if ax.images and ax.get_visible()]
    assert len(shown) == 8 and {ax.images[0].get_clim() for ax in shown} == {(-c.views[0].vmax, c.views[0].vmax)}
    assert shown[0].get_title().startswith("lin: ") and shown[4].get_title().startswith("lin2: ")


def test_weight_images_at_several_steps_in_one_figure(runs):
    r = nl.open_run(runs["lin"])
    fig = nl.plot.weight_images(runs["lin"], "weights/0.weight", step=[1, 5])
    shown = [ax for ax in fig.axes if ax.images and ax.get_visible()]
    assert len(shown) == 8
    assert shown[0].get_title() == "step 1: 0" and shown[4].get_title() == "step 5: 0"
    m = max(np.abs(r["weights/0.weight"].at(s)).max() for s in (1, 5))
    for k, ax in enumerate(shown):
        step, unit = (1, 5)[k // 4], k % 4
        np.testing.assert_allclose(ax.images[0].get_array(), r["weights/0.weight"].at(step)[unit].reshape(4, 4))
        np.testing.assert_allclose(ax.images[0].get_clim(), (-m, m))
