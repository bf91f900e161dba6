"""End-to-end: the dashboard in headless Debian chromium driven by Playwright.

Screenshots go to test-artifacts/ui/ (gitignored). Needs /usr/bin/chromium (scripts/install_browser.sh).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("playwright.sync_api")

from browser_pages import ART, checked_page, chromium, needs_chromium  # noqa: E402
from netlapse.ui import Dashboard  # noqa: E402
from ui_runs import digits_run, hidden_run, synthetic_run, weight_at  # noqa: E402

pytestmark = [pytest.mark.browser, needs_chromium]

HERE = Path(__file__).resolve().parent
STEPS = 30


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    synthetic_run(root / "synthetic", STEPS)
    digits_run(root / "mnist-like" / "digits-mlp", steps=120)
    hidden_run(root / "geometry" / "hidden")
    (root / "broken").mkdir()
    (root / "broken" / "run.json").write_text('{"format_version": 1, "na')
    return root


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


def test_runs_page_lists_runs_and_filters(page, server):
    page.goto(server.url)
    _ready(page, "runs")
    ids = page.locator("tr[data-run]").evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert ids == ["broken", "geometry/hidden", "mnist-like/digits-mlp", "synthetic"]
    assert page.locator("tr[data-run=synthetic] .badge").inner_text() == "finished"
    assert page.locator("tr[data-run=broken] .badge").inner_text() == "error"
    assert page.locator("tr[data-run=synthetic] td.num").inner_text() == str(STEPS - 1)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ART / "runs-light.png"))
    page.fill("#filter", "digits")
    assert page.locator("tr[data-run]").count() == 1
    page.fill("#filter", "")
    # a run that appears in the folder shows up without a reload
    page.evaluate("window.__noReload = 1")
    synthetic_run(server.app.state.root.root / "late-arrival", 3)
    page.wait_for_selector("tr[data-run=late-arrival]", timeout=5000)
    assert page.evaluate("window.__noReload") == 1


def test_slider_changes_the_step_everywhere_and_the_drawn_pixels(page, server):
    page.goto(server.url + "#/run/synthetic")
    _ready(page, "run")
    canvas = page.locator("#weight-canvas")
    page.wait_for_function(f"document.querySelector('#weight-canvas').dataset.step == '{STEPS - 1}'")
    before = canvas.evaluate("c => c.toDataURL()")
    page.locator("#slider").fill("5")
    page.wait_for_function("document.querySelector('#weight-canvas').dataset.step == '5'")
    assert page.locator("#step-readout").inner_text() == "step 5"
    # every panel shows step 5 (the health panel loads only when scrolled into view: its own test)
    page.wait_for_function("[...document.querySelectorAll('[data-panel]:not([data-panel=health]) .panel-step')]"
                           ".every(e => e.textContent.includes('5'))")
    after = canvas.evaluate("c => c.toDataURL()")
    assert after != before
    # the pixel of unit 0, input 0 (tile 0, top-left) has the colour of the stored value at step 5
    w = weight_at(5)
    absmax = float(page.evaluate("""() => fetch('/api/tensor?run=synthetic&stream=weights%2Ffc1.weight&step=5')
        .then(r => r.headers.get('X-Scale'))"""))
    got = canvas.evaluate("c => Array.from(c.getContext('2d').getImageData(0, 0, 1, 1).data)")
    c = np.float32(127.5 / absmax)   # the colour code formula of docs/http_api.md
    k = int(np.clip(np.floor(w[0, 0] * c + np.float32(128)), 0, 255))
    lut = page.evaluate(f"Array.from(Charts.DIVERGING.slice({3 * k}, {3 * k + 3}))")
    assert got[:3] == lut
    # unit 1 sits in the next 8x8 tile: its top-left pixel is w[1, 0]
    got1 = canvas.evaluate("c => Array.from(c.getContext('2d').getImageData(9, 0, 1, 1).data)")
    k1 = int(np.clip(np.floor(w[1, 0] * c + np.float32(128)), 0, 255))
    assert got1[:3] == page.evaluate(f"Array.from(Charts.DIVERGING.slice({3 * k1}, {3 * k1 + 3}))")
    # the probe view draws the stored probe output of the same step
    page.wait_for_function("document.querySelector('[data-panel=probe]').dataset.drawn == '5'")
    assert "probe/fc2 at step 5" in page.locator("[data-panel=probe] .legend").inner_text()
    page.screenshot(path=str(ART / "run-synthetic-step5.png"), full_page=True)


def test_run_page_screenshots_light_and_dark(browser, server):
    for scheme in ("light", "dark"):
        with checked_page(browser, scheme=scheme) as pg:
            pg.goto(server.url + "#/run/mnist-like/digits-mlp")
            _ready(pg, "run")
            pg.locator("#slider").fill("60")
            pg.wait_for_function("document.querySelector('#weight-canvas').dataset.step == '60'")
            pg.wait_for_timeout(500)
            pg.screenshot(path=str(ART / f"run-digits-{scheme}.png"), full_page=True)
            bg = pg.evaluate("getComputedStyle(document.body).backgroundColor")
            assert (bg == "rgb(20, 23, 29)") == (scheme == "dark")


def test_hidden_space_view_follows_the_slider(page, server, runs_dir):
    page.goto(server.url + "#/run/geometry/hidden")
    _ready(page, "run")
    probe = page.locator("[data-panel=probe]")
    assert probe.locator("h2").text_content() == "Hidden space · probe/h"
    page.wait_for_function("document.querySelector('[data-panel=probe]').dataset.drawn == '5'")
    before = probe.locator("canvas").evaluate("c => c.toDataURL()")
    page.locator("#slider").fill("1")
    page.wait_for_function("document.querySelector('[data-panel=probe]').dataset.drawn == '1'")
    assert probe.locator("canvas").evaluate("c => c.toDataURL()") != before
    page.screenshot(path=str(ART / "run-hidden.png"), full_page=True)


def test_compare_overlays_metrics_and_shows_tensors_side_by_side(page, server):
    page.goto(server.url + "#/compare?runs=synthetic,mnist-like/digits-mlp")
    _ready(page, "compare")
    assert page.locator("[data-panel=cmp-metrics] canvas").count() == 2     # loss, acc
    side = page.locator("[data-panel=cmp-side]")
    page.wait_for_function("[...document.querySelectorAll('[data-panel=cmp-side] .legend')].every(e => e.textContent.includes('recorded step'))")
    assert side.locator("canvas").count() == 2
    page.locator("#cmp-slider").fill("3")
    page.wait_for_function("document.querySelector('[data-panel=cmp-side] .legend').textContent.includes('recorded step 3')")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ART / "compare.png"), full_page=True)


def test_corrupt_run_shows_an_error_card_and_other_runs_still_open(page, server):
    page.goto(server.url + "#/run/broken")
    _ready(page, "run")
    card = page.locator("[data-testid=error-card]")
    assert "not valid JSON" in card.inner_text()
    page.screenshot(path=str(ART / "run-broken.png"))
    page.goto(server.url + "#/run/synthetic")
    _ready(page, "run")
    assert page.locator("[data-testid=error-card]").count() == 0


def test_refused_paths_in_the_browser(page, server):
    base = server.url.rstrip("/")
    for raw in ("/static/..%2fapp.js", "/static/%2e%2e%2fapp.js", "/api/run?run=..%2F..%2Fetc",
                "/api/run?run=%2Fetc", "/api/tensor?run=synthetic%2F..%2F..&stream=x"):
        resp = page.request.get(base + raw)     # sent as written (a page load would resolve %2e%2e)
        assert resp.status in (400, 403), (raw, resp.status)
    assert page.goto(base + "/static/%2e%2e/index.html").status == 404   # chromium resolved it: /index.html
    page.goto(server.url + "#/run/..%2F..%2Fetc")
    _ready(page, "run")
    assert "Refused" in page.locator("[data-testid=error-card]").inner_text()


def test_live_run_shows_new_steps_without_reload(page, server, runs_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    path = runs_dir / "live"
    proc = subprocess.Popen([sys.executable, str(HERE / "writer_proc.py"), str(path), "400", "0.03"],
                            env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "0"
        deadline = time.monotonic() + 10
        while not (path / "commit.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        page.goto(server.url + "#/run/live")
        _ready(page, "run")
        page.evaluate("window.__noReload = 1")
        assert page.locator("#run-status").inner_text() == "live"
        first = int(page.locator("#step-readout").get_attribute("data-step"))
        t0 = time.monotonic()
        page.wait_for_function(f"Number(document.querySelector('#step-readout').dataset.step) > {first}",
                               timeout=2500)
        waited = time.monotonic() - t0
        page.wait_for_function(f"Number(document.querySelector('#step-readout').dataset.step) > {first + 20}",
                               timeout=5000)
        assert waited < 2.0
        assert page.evaluate("window.__noReload") == 1
        shown = int(page.locator("#step-readout").get_attribute("data-step"))
        # the weight image follows: it shows the recorded tensor of a step after the first one
        page.wait_for_function(f"Number(document.querySelector('#weight-canvas').dataset.step) > {first}")
        rows = page.evaluate("Number(document.querySelector('tr[data-stream=\"weights/w\"] td.num').textContent)")
        assert rows > first + 1
        page.screenshot(path=str(ART / "run-live.png"), full_page=True)
        assert shown > first
    finally:
        proc.kill()
        proc.wait()
