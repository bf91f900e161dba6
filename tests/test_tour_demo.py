"""`netlapse demo`: the quick tour writes runs, pictures and a gallery that references them."""

import html
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

import netlapse as nl  # noqa: E402
from netlapse.cli import main  # noqa: E402
from netlapse.tour import SCENES, TOUR_FILE  # noqa: E402


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.sections = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key) and not attrs[key].startswith("#"):
                self.links.append((tag, attrs[key]))
        if tag == "section":
            self.sections.append(attrs.get("id"))


@pytest.fixture(scope="module")
def quick_tour(tmp_path_factory):
    """The quick tour, given a relative --out as a user typing `netlapse demo` would."""
    base = tmp_path_factory.mktemp("demo")
    out = subprocess.run([sys.executable, "-m", "netlapse", "demo", "--quick", "--out", "tour"],
                         cwd=base, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return base / "tour"


def test_gallery_references_existing_pictures(quick_tour):
    page = (quick_tour / "index.html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(page)
    assert parser.sections == list(SCENES)
    assert parser.links, "the gallery shows no pictures"
    for _, link in parser.links:
        target = quick_tour / link
        assert target.is_file() and target.stat().st_size > 0, link
    tour = json.loads((quick_tour / TOUR_FILE).read_text())
    shown = {link for _, link in parser.links}
    for name, scene in tour["scenes"].items():
        assert scene["pictures"], f"{name} made no picture"
        for entry in scene["pictures"]:
            assert entry["file"] in shown
            assert html.escape(entry["caption"]) in page
        for run in scene["runs"]:
            assert nl.open_run(quick_tour / run).status == "finished"


def test_quick_tour_reproduces_every_finding(quick_tour):
    f = {k: v["findings"] for k, v in json.loads((quick_tour / TOUR_FILE).read_text())["scenes"].items()}
    assert abs(f["single-neuron"]["w1"] - 1) < 0.05 and abs(f["single-neuron"]["w2"] - 1) < 0.05
    assert f["single-neuron"]["loss_ratio"] >= 100
    assert f["digit-filters"]["accuracy_end"] >= 0.85
    sat = f["deep-saturation"]
    assert sat["tanh, stddev 200"]["ratio_first_last"] < 1e-3 < 1e-2 < sat["tanh, Xavier"]["ratio_first_last"]
    assert f["poly-fit"]["test_mse"]["1-6-1"] < f["poly-fit"]["test_mse"]["1-2-1"]
    assert f["rings"]["accuracy"]["2-3-2-1"] >= 0.95 > f["rings"]["accuracy"]["2-1-2-1"]


def test_pictures_read_back(quick_tour):
    import imageio.v3 as iio
    from PIL import Image

    pngs = sorted(quick_tour.glob("*.png"))
    assert len(pngs) >= 5
    for p in pngs:
        with Image.open(p) as im:
            assert im.size[0] >= 300 and im.size[1] >= 200, p
            # not a blank canvas
            assert np.asarray(im.convert("L")).std() > 5, p
    gif = iio.imread(quick_tour / "digit-filters.gif", index=None)
    assert gif.ndim == 4 and 5 <= gif.shape[0] <= 20
    assert not np.array_equal(gif[0], gif[-1]), "the weight maps should change over the animation"
    mp4 = _read_mp4(quick_tour / "rings-2-3-2-1.mp4")     # the ffmpeg bundled in imageio-ffmpeg
    assert mp4.shape[0] >= 10 and mp4.shape[2] >= 600
    assert not np.array_equal(mp4[0], mp4[-1])
    player = (quick_tour / "rings-2-3-2-1.html").read_text(encoding="utf-8")
    assert "<script" in player and "data:image" not in player and len(player) < 5_000_000


def _read_mp4(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    frames = imageio_ffmpeg.read_frames(str(path))
    meta = next(frames)
    w, h = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in frames])


def test_demo_bad_scene_fails_before_training(tmp_path):
    out = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-m", "netlapse", "demo", "single-neuorn", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "no scene 'single-neuorn'" in proc.stderr
    assert "Did you mean 'single-neuron'" in proc.stderr
    assert "digit-filters" in proc.stderr          # lists the scenes there are
    assert not out.exists()


def test_demo_help_lists_scenes():
    proc = subprocess.run([sys.executable, "-m", "netlapse", "demo", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    for name in SCENES:
        assert name in proc.stdout
    assert "--quick" in proc.stdout and "index.html" in proc.stdout
