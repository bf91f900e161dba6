"""The dashboard's health panel and badges, in headless chromium: the panel lists the doctor's
findings (the same report nl.diagnose gives), links each to its first step, draws its view
(the same frame the view computes from the store), and updates while a run trains."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("starlette")
torch = pytest.importorskip("torch")
pytest.importorskip("playwright.sync_api")

from browser_pages import ART, checked_page, chromium, needs_chromium  # noqa: E402
import netlapse as nl  # noqa: E402
from netlapse.ui import Dashboard  # noqa: E402

import doctor_faults as D  # noqa: E402

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    with checked_page(browser, height=1100) as pg:
        yield pg


def test_health_panel_and_badges(tmp_path, page):
    broken = next(s for s in D.BROKEN if s.name == "dead_relu_bias")
    D.train(broken, tmp_path / "dead-relu")
    healthy = D.Scenario("healthy", D.healthy_mlp, 40)
    D.train(healthy, tmp_path / "healthy")
    report = nl.diagnose(tmp_path / "dead-relu")
    assert nl.diagnose(tmp_path / "healthy").ok
    with Dashboard(tmp_path, port=0) as dash:
        page.goto(dash.url)
        page.wait_for_selector("tr[data-run=healthy] .health-badge.healthy", timeout=20000)
        page.wait_for_selector("tr[data-run=dead-relu] .health-badge.problem", timeout=20000)
        assert page.locator("tr[data-run=dead-relu] .health-badge").inner_text() == \
            f"{len(report.problems)} problems"
        page.goto(f"{dash.url}#/run/dead-relu")
        panel = page.locator("section[data-panel=health]")
        panel.scroll_into_view_if_needed()   # the report is fetched when the panel is seen
        panel.locator(".finding").first.wait_for(timeout=20000)
        kinds = panel.locator(".finding").evaluate_all("rows => rows.map(r => r.dataset.kind)")
        assert kinds == [f.kind for f in report]
        dead = report.findings[kinds.index("dead_units")]
        row = panel.locator(".finding[data-kind=dead_units]")
        layers = ", ".join(s.split("/", 1)[1] for s in dead.streams)
        assert f"dead_units in {layers} · since step {dead.first_step}" in row.inner_text()
        # its view, drawn from the same frame the view computes from the store
        canvas = row.locator("canvas")
        page.wait_for_function("c => c.dataset.drawn === '1'", arg=canvas.element_handle(), timeout=20000)
        drawn = canvas.evaluate("c => ({step: c.frame.step, view: c.frame.view, title: c.frame.spec.title})")
        assert drawn["view"] == dead.view
        from netlapse import views
        v = views.distributions(tmp_path / "dead-relu", **dead.view["args"])
        at = int(np.searchsorted(v.steps, dead.first_step, side="right") - 1)
        assert drawn["step"] == int(v.steps[at])
        # the link goes to the first step
        row.locator("a.health-step").click()
        page.wait_for_function(f"() => document.querySelector('#step-readout').dataset.step === '{dead.first_step}'")
        panel.screenshot(path=str(ART / "health-panel.png"))
        page.screenshot(path=str(ART / "health-run-page.png"), full_page=False)


def test_health_panel_is_live_while_training(tmp_path, page):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    run = nl.Run(tmp_path / "live", flush_every=60)
    w = nl.watch(model, run, opt, activations="stats")

    def steps(n, nan_at=None):
        for i in range(n):
            x = torch.randn(8, 4)
            if i == nan_at:
                x[0, 0] = float("nan")
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            run.log(loss=loss.item())
        run.flush()

    try:
        steps(12)
        with Dashboard(tmp_path, port=0) as dash:
            page.goto(f"{dash.url}#/run/live")
            panel = page.locator("section[data-panel=health]")
            panel.scroll_into_view_if_needed()
            panel.locator(".empty").wait_for(timeout=20000)      # healthy so far
            steps(5, nan_at=2)                                     # step 15 gets a NaN input
            panel.locator(".finding[data-kind=nonfinite]").wait_for(timeout=30000)
            text = panel.locator(".finding[data-kind=nonfinite]").inner_text()
            assert "since step 15" in text
    finally:
        w.close()
        run.close()
