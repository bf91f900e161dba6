"""GIF, MP4 and HTML files: the right number of frames, the right size, the stored arrays."""
import json
from html.parser import HTMLParser

import numpy as np
import pytest

import netlapse as nl
from netlapse import views as V
from netlapse.cli import main
from netlapse.render.html import decode_array
from view_runs import record_rings

imageio = pytest.importorskip("imageio")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def rings(tmp_path_factory):
    path = tmp_path_factory.mktemp("render") / "rings"
    record_rings(path, steps=8)
    return path


class _Player(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.data, self._in = [], None, False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag == "script" and dict(attrs).get("id") == "netlapse-data"

    def handle_data(self, data):
        if self._in:
            self.data = (self.data or "") + data

    def handle_endtag(self, tag):
        self._in = False


def _parse(path):
    p = _Player()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_gif_frames_and_size(rings, tmp_path):
    anim = nl.animate.hidden_space(rings, steps="0:8:5")
    np.testing.assert_array_equal(anim.frames, [0, 2, 4, 6, 8])
    out = anim.save(tmp_path / "rings.gif")
    frames = imageio.v3.imread(out, index=None)
    assert frames.shape[0] == 5
    spec = anim.frame_spec(0)
    assert frames.shape[1:3] == (round(spec["size"][1] * 100), round(spec["size"][0] * 100))
    assert not np.array_equal(frames[0], frames[-1])        # the picture moves


def test_mp4_uses_bundled_ffmpeg(rings, tmp_path, monkeypatch):
    import imageio_ffmpeg

    monkeypatch.setenv("PATH", str(tmp_path))               # no system ffmpeg reachable
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    from netlapse.render.video import ffmpeg_exe

    assert ffmpeg_exe() == imageio_ffmpeg.get_ffmpeg_exe()
    assert "imageio_ffmpeg" in ffmpeg_exe()
    anim = nl.animate.weight_images(rings, "weights/0.weight", steps="0:8:4")
    out = anim.save(tmp_path / "w.mp4", fps=5)
    reader = imageio.v2.get_reader(out, format="FFMPEG")
    try:
        frames = [f for f in reader]
    finally:
        reader.close()
    assert len(frames) == 4
    spec = anim.frame_spec(0)
    w, h = round(spec["size"][0] * 100), round(spec["size"][1] * 100)
    assert frames[0].shape[:2] == (h + h % 2, w + w % 2)


def test_html_player_holds_the_arrays(rings, tmp_path):
    anim = nl.animate.hidden_space(rings, max_points=None)
    out = anim.save(tmp_path / "rings.html")
    p = _parse(out)
    tags = [t for t, _ in p.tags]
    assert "canvas" in tags and "img" not in tags
    assert tags.count("input") == 1 and "button" in tags
    assert "data:image" not in out.read_text()
    doc = json.loads(p.data)
    assert len(doc["frames"]) == len(anim) == 9
    assert doc["steps"] == list(range(9))
    r = nl.open_run(rings)
    layout = r.config["probe_layout"]
    d0, d1 = layout["data"]
    for i in (0, 8):
        left = doc["frames"][i]["panels"][0]
        scatter = [it for it in left["items"] if it["kind"] == "scatter"][0]
        pts = decode_array(doc["arrays"][scatter["xy"]["$a"]])
        want = r["probe/3"].at(i)[d0:d1]
        span = want.max() - want.min()
        np.testing.assert_allclose(pts, want, atol=span / 65534 + 1e-9)
    # static arrays (the class labels) are stored once for all frames
    labels_refs = {f["panels"][0]["items"][1]["classes"]["$a"] for f in doc["frames"]}
    assert len(labels_refs) == 1


def test_html_100_rings_frames_under_5mb(tmp_path):
    """A rings-sized probe: 2000 points, 21 + 21 grid lines of 41 points, a 64 x 64 plane."""
    import torch
    from torch import nn

    from view_runs import rings as make_rings

    torch.manual_seed(0)
    x, y = make_rings(4000)
    xp, yp, layout = V.plane_probe(x[:2000], y[:2000])
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1), nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)[:, None]
    with nl.Run(tmp_path / "big", config={"probe_layout": layout}) as run:
        w = nl.watch(model, run, opt, weights="full", grads=None, probe=(torch.from_numpy(xp), torch.from_numpy(yp)))
        for _ in range(99):
            opt.zero_grad()
            ((model(xt) - yt) ** 2).mean().backward()
            opt.step()
        w.close()
    out = nl.animate.hidden_space(tmp_path / "big").save(tmp_path / "big.html")
    doc = json.loads(_parse(out).data)
    assert len(doc["frames"]) == 100
    size = out.stat().st_size
    assert size < 5_000_000, size


@pytest.mark.browser
def test_html_player_draws_in_chromium(rings, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    out = nl.animate.hidden_space(rings).save(tmp_path / "p.html")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        page.fill("#slider", "8")
        page.dispatch_event("#slider", "input")
        assert page.evaluate("window.netlapsePlayer.frame") == 8
        assert "step 8" in page.text_content("#label")
        page.click("#play")
        page.wait_for_function("window.netlapsePlayer.frame !== 8")   # it plays: frames advance
        inked = page.evaluate("""() => { const c = document.getElementById('view');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 200) n++; return n; }""")
        browser.close()
    assert not errors
    assert inked > 1000


def test_cli_render_writes_files(rings, tmp_path, capsys):
    assert main(["render", str(rings), "hidden_space", "--out", str(tmp_path / "h.png")]) == 0
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["render", str(rings), "weight_images", "--stream", "weights/0.weight",
                 "--steps", "0:8:3", "--out", str(tmp_path / "w.gif")]) == 0
    assert imageio.v3.imread(tmp_path / "w.gif", index=None).shape[0] == 3
    assert main(["render", str(rings), str(rings), "compare", "--view", "layer_profile",
                 "--out", str(tmp_path / "c.svg")]) == 0
    assert b"<svg" in (tmp_path / "c.svg").read_bytes()[:400]
    assert main(["render", str(rings), "distributions", "--out", str(tmp_path / "d.png")]) == 1
    assert "--stream" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["render", "--help"])
    assert "hidden_space" in capsys.readouterr().out


def test_static_layer_profile_file_matches_view(rings, tmp_path):
    v = V.layer_profile(rings, step=None)
    from netlapse.render import save

    out = save(v, tmp_path / "lp.png")
    assert out.exists() and out.stat().st_size > 1000
