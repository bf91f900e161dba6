"""Make docs/images/notebook.png: execute examples/notebook.ipynb with nbclient (a real
ipykernel), render its training, playback and summary cells to HTML with nbconvert, and
screenshot that page in Debian chromium (Playwright), the player moved to its last frame.

    PYTHONPATH=. python docs/images/notebook.py [--out docs/images/notebook.png]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOWN = ("nl.live(", "nl.animate.weight_images(", "r")   # the cells the picture shows


def execute(work: Path):
    import nbclient
    import nbformat

    nb = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}}).execute()
    return nb


def to_html(nb, path: Path) -> None:
    from nbconvert import HTMLExporter

    keep = [c for c in nb.cells if c.cell_type == "code"
            and any(c.source == s if s == "r" else s in c.source for s in SHOWN)]
    nb = nb.copy()
    nb.cells = keep
    body, _ = HTMLExporter().from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")


def screenshot(page_path: Path, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(page_path.as_uri())
        frame = page.frame_locator("iframe[data-netlapse-player]")
        slider = frame.locator("#slider")
        slider.evaluate("s => { s.value = s.max; s.dispatchEvent(new Event('input')); }")
        n = page.locator("iframe[data-netlapse-player]").get_attribute("data-netlapse-player")
        frame.locator("#label").filter(has_text=f"({n}/{n})").wait_for()
        page.wait_for_timeout(300)    # the frame fits its height to the player after loading
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "notebook.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nb = execute(work)
        to_html(nb, work / "notebook.html")
        screenshot(work / "notebook.html", Path(args.out))
    print(args.out)


if __name__ == "__main__":
    main()
