"""The dashboard, looked at in Debian chromium: what it draws equals what the views compute.

Runs come from the tour's own training code (rings: a 2-3-2-1 and a 2-1-2-1 tanh MLP, two
epochs). Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("playwright.sync_api")
pytest.importorskip("torch")

from browser_pages import ART, checked_page, chromium, needs_chromium  # noqa: E402
import netlapse as nl  # noqa: E402
from netlapse.ui import Dashboard  # noqa: E402
from netlapse.views.probes import plane_probe  # noqa: E402

pytestmark = [pytest.mark.browser, needs_chromium]



@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    from netlapse.tour import rings

    out = tmp_path_factory.mktemp("tour")
    rings.run(out, epochs=2, archs=[(2, 3, 2, 1), (2, 1, 2, 1)], draw=False)
    # a probe whose target is NaN in a data row by mistake (not a grid row): that one is bad
    x, y, layout = plane_probe(np.array([[0.1, 0.2], [0.5, -0.5], [-0.3, 0.4]]), np.array([0.0, 1.0, 1.0]),
                               lines=2, points_per_line=3, resolution=2)
    y[1] = np.nan
    with nl.Run(out / "runs" / "nan-target", config={"probe_layout": layout}) as run:
        run.record_array("inputs/probe", x, step=0, kind="inputs")
        run.record_array("inputs/probe_target", y, step=0, kind="inputs")
        run.record_array("probe/h", np.tanh(x), step=0)
    # metrics at every step to 2,000, the weights every 128 steps: the last tensor is at 1,920
    with nl.Run(out / "runs" / "late-metrics") as run:
        for step in range(2001):
            run.step = step
            if step % 128 == 0:
                run.record_array("weights/w", np.full((3, 4), step, np.float32))
            run.log(loss=1.0 / (1 + step))
    return out / "runs"


@pytest.fixture(scope="module")
def server(runs_dir):
    with Dashboard(runs_dir, port=0) as dash:
        yield dash


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    with checked_page(browser) as pg:
        yield pg


def _ready(page, what):
    page.wait_for_selector(f"body[data-ready={what}]", timeout=15000)


def _decoded(page, item_path: str, key: str) -> np.ndarray:
    """An array of the drawn frame's spec, decoded in the page as the drawing code decodes it."""
    got = page.evaluate(f"""() => {{
        const c = document.querySelector('[data-panel=probe] canvas.spec-canvas');
        const it = c.frame.spec.{item_path};
        const a = NetlapseSpec.decode(c.frame, it.{key}.$a);
        return {{shape: a.shape, data: Array.from(a.data, v => Number.isFinite(v) ? v : null)}};
    }}""")
    return np.asarray([np.nan if v is None else v for v in got["data"]], np.float64).reshape(got["shape"])


def _pixel(page, x: float, y: float) -> np.ndarray:
    return np.asarray(page.evaluate(f"""() => Array.from(document.querySelector('[data-panel=probe] canvas.spec-canvas')
        .getContext('2d').getImageData({int(round(x))}, {int(round(y))}, 1, 1).data)"""))[:3]


def test_hidden_space_panel_draws_what_the_view_computes(page, server, runs_dir):
    page.goto(server.url + "#/run/rings-2-3-2-1")
    _ready(page, "run")
    page.locator("#slider").fill("40")   # between recorded steps 32 and 48: the frame of 32
    page.wait_for_function("document.querySelector('[data-panel=probe]').dataset.drawn == '40'")
    canvas = page.locator("[data-panel=probe] canvas.spec-canvas")
    assert canvas.get_attribute("data-step") == "32"
    v = nl.views.hidden_space(runs_dir / "rings-2-3-2-1", layer="3", steps=32)
    assert v.grid is not None and v.boundary is not None and v.regions is not None
    # the data drawn: the warped grid lines, the decision boundary, the decision regions
    grid = _decoded(page, "panels[0].items[0]", "segs")
    span = np.nanmax(v.grid) - np.nanmin(v.grid)
    np.testing.assert_allclose(grid, v.grid[0], atol=span / 65534 + 1e-6)
    bx, by = _decoded(page, "panels[0].items[2]", "x"), _decoded(page, "panels[0].items[2]", "y")
    np.testing.assert_allclose(np.stack([bx, by], axis=1), v.boundary[0], atol=1e-4)
    regions = _decoded(page, "panels[1].items[0]", "data")
    np.testing.assert_allclose(regions, v.regions[0], atol=(v.regions[0].max() - v.regions[0].min()) / 254 + 1e-6)
    # and the pixels: the boundary is a black line, the regions are the colour map under alpha
    axes = canvas.evaluate("c => c.axes")
    left, right = axes
    X = lambda ax, x: ax["left"] + (x - ax["x0"]) / (ax["x1"] - ax["x0"]) * ax["width"]   # noqa: E731
    Y = lambda ax, y: ax["top"] + ax["height"] - (y - ax["y0"]) / (ax["y1"] - ax["y0"]) * ax["height"]   # noqa: E731
    mid = v.boundary[0].mean(axis=0)
    assert _pixel(page, X(left, mid[0]), Y(left, mid[1])).max() < 90, "no boundary drawn"
    # a grid line: the middle of the segment between two points of one line, away from the rest
    pts = v.grid[0].reshape(-1, 2)
    line = v.grid[0][len(v.grid[0]) // 4]
    gp = (line[len(line) // 2] + line[len(line) // 2 + 1]) / 2
    px = np.array([X(left, gp[0]), Y(left, gp[1])])
    near = [_pixel(page, px[0] + dx, px[1] + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    assert min(int(p.mean()) for p in near) < 235, "no grid line drawn"
    assert np.isfinite(pts).all()
    # a region cell far from every data point: white under the colormap's colour at alpha 0.45
    lut = np.frombuffer(__import__("base64").b64decode(page.evaluate(
        "document.querySelector('[data-panel=probe] canvas.spec-canvas').frame.cmaps.coolwarm")), np.uint8).reshape(256, 3)
    res = v.regions.shape[-1]
    ticks = np.linspace(-v.lim, v.lim, res + 1)
    centres = (ticks[:-1] + ticks[1:]) / 2
    checked = 0
    for i, j in [(res // 2, res // 2), (2, 2), (res - 3, 2), (res // 2, 3)]:
        cx, cy = centres[j], centres[i]
        if np.min(np.hypot(v.inputs[:, 0] - cx, v.inputs[:, 1] - cy)) < 4 * v.lim / res:
            continue
        k = int(np.clip(round(v.regions[0, i, j] * 255), 0, 255))
        want = 0.45 * lut[k] + 0.55 * 255
        got = _pixel(page, X(right, cx), Y(right, cy))
        assert np.abs(got - want).max() <= 3, (i, j, got, want)
        checked += 1
    assert checked >= 2
    page.screenshot(path=str(ART / "rings-hidden-space.png"), full_page=True)


def test_compare_page_defaults_to_a_common_weight_stream_and_draws_it(page, server, runs_dir):
    page.goto(server.url + "#/compare?runs=rings-2-1-2-1,rings-2-3-2-1")
    _ready(page, "compare")
    page.wait_for_function("[...document.querySelectorAll('[data-panel=cmp-side] canvas')].every(c => c.dataset.step)")
    cells = page.locator("[data-panel=cmp-side] canvas").evaluate_all(
        "cs => cs.map(c => ({run: c.dataset.run, stream: c.dataset.stream, w: c.width, h: c.height}))")
    streams = {c["stream"] for c in cells}
    assert len(streams) == 1 and streams.pop().startswith("weights/"), cells
    for c in cells:
        shape = nl.open_run(runs_dir / c["run"])[c["stream"]].shape
        assert c["w"] * c["h"] == int(np.prod(shape))   # one pixel per weight, not a 6218x2 strip
    page.screenshot(path=str(ART / "compare-rings.png"), full_page=True)


def test_nan_targets_of_grid_rows_are_not_flagged_but_a_nan_data_target_is(page, server):
    page.goto(server.url + "#/run/rings-2-3-2-1")
    _ready(page, "run")
    cell = "tr[data-stream='inputs/probe_target'] td.stat:nth-last-child(2)"
    page.wait_for_selector("[data-panel=layers][data-sparks='1']")   # the table's last redraw
    page.wait_for_function(f"document.querySelector(\"{cell}\").dataset.nonfinite")
    assert page.locator(cell).get_attribute("data-nonfinite") == "expected"
    assert page.locator(cell).inner_text() == "5818 no target"   # 6218 rows, 400 of them data
    assert _colour(page, cell) == _colour_of(page, "var(--muted)") != _colour_of(page, "var(--bad)")
    page.goto(server.url + "#/run/nan-target")
    _ready(page, "run")
    page.wait_for_selector("[data-panel=layers][data-sparks='1']")   # the table's last redraw
    page.wait_for_function(f"document.querySelector(\"{cell}\").dataset.nonfinite")
    assert page.locator(cell).get_attribute("data-nonfinite") == "bad"
    assert _colour(page, cell) == _colour_of(page, "var(--bad)")


def _colour(page, selector: str) -> str:
    return page.locator(selector).evaluate("e => getComputedStyle(e).color")


def _colour_of(page, css: str) -> str:
    return page.evaluate(f"""() => {{ const e = document.createElement('span'); e.style.color = '{css}';
        document.body.append(e); const c = getComputedStyle(e).color; e.remove(); return c; }}""")


def test_slider_label_reads_the_last_recorded_step_and_says_where_tensors_end(page, server):
    page.goto(server.url + "#/run/rings-2-3-2-1")
    _ready(page, "run")
    assert page.locator("#step-readout").inner_text() == "step 64"   # 2 epochs x 32 steps
    assert page.locator("#slider").get_attribute("max") == "64"
    assert page.locator("#step-note").inner_text() == ""
    page.goto(server.url + "#/run/late-metrics")
    _ready(page, "run")
    page.wait_for_function("document.querySelector('#weight-canvas').dataset.step == '1920'")
    assert page.locator("#step-readout").inner_text() == "step 2,000"
    assert page.locator("#step-note").inner_text() == "metrics only · tensors end at step 1,920"
    page.locator("#slider").fill("1930")
    assert page.locator("#step-readout").inner_text() == "step 1,930"
    page.locator("#slider").fill("1920")
    assert page.locator("#step-note").inner_text() == ""
    page.screenshot(path=str(ART / "late-metrics.png"))
