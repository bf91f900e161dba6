"""A self-contained, offline HTML player: the frames' arrays drawn on a canvas in the browser.

The file holds one JSON document: every frame's spec (see ``render.spec``) with its arrays
replaced by references into one table of arrays, each stored once (static arrays such as the
target curve or the class labels are shared by all frames) as base64 quantised integers:
``uint16`` for coordinates (value = lo + q * (hi - lo) / 65534, 65535 = NaN) and ``uint8`` for
image cells (colormaps have 256 levels). No PNGs, no network, no external script.
"""

from __future__ import annotations

import base64
import hashlib
import html as _html
import json
from importlib import resources
from pathlib import Path

import numpy as np

from .._progress import progress
from .spec import frame_count, frame_spec

__all__ = ["player_document", "player_page", "frame_document", "save_html", "encode_array",
           "decode_array", "script"]

NAN_U16 = 65535


def encode_array(a: np.ndarray, bits: int = 16) -> dict:
    """``{"shape", "lo", "hi", "bits", "b64"}`` for a float array (see the module doc)."""
    a = np.asarray(a, np.float64)
    finite = a[np.isfinite(a)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    top = 65534 if bits == 16 else 254
    scale = top / (hi - lo) if hi > lo else 0.0
    q = np.where(np.isfinite(a), np.round((np.nan_to_num(a, nan=lo) - lo) * scale), top + 1)
    q = q.astype("<u2" if bits == 16 else "u1")
    return {"shape": list(a.shape), "lo": lo, "hi": hi, "bits": bits,
            "b64": base64.b64encode(q.tobytes()).decode("ascii")}


def decode_array(d: dict) -> np.ndarray:
    """The inverse of ``encode_array`` (what the browser computes), for tests and tools."""
    bits = d["bits"]
    q = np.frombuffer(base64.b64decode(d["b64"]), "<u2" if bits == 16 else "u1").astype(np.float64)
    top = 65534 if bits == 16 else 254
    span = d["hi"] - d["lo"]
    out = d["lo"] + q * (span / top if span else 0.0)
    out[q == top + 1] = np.nan
    return out.reshape(d["shape"])


class _Table:
    def __init__(self):
        self.arrays: list[dict] = []
        self.index: dict = {}

    def ref(self, a, bits: int) -> dict:
        a = np.ascontiguousarray(np.asarray(a, np.float64))
        key = (a.shape, bits, hashlib.blake2b(a.tobytes(), digest_size=16).hexdigest())
        if key not in self.index:
            self.index[key] = len(self.arrays)
            self.arrays.append(encode_array(a, bits))
        return {"$a": self.index[key]}


def _pack(obj, table: _Table, cmaps: set, in_image: bool = False):
    if isinstance(obj, dict):
        if obj.get("kind") == "image" or "cmap" in obj:
            cmaps.add(obj["cmap"])
        image = obj.get("kind") == "image"
        if image and obj.get("norm") == "log":   # quantise log10 values: 8 bits over decades
            d = np.asarray(obj["data"], np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                logd = np.where(d > 0, np.log10(np.where(d > 0, d, 1.0)), np.nan)
            obj = {**obj, "data": logd, "encoded": "log10"}
        return {k: (table.ref(v, 8) if image and k == "data" else _pack(v, table, cmaps))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, table, cmaps) for v in obj]
    if isinstance(obj, np.ndarray):
        return table.ref(obj, 16)
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def _lut(name: str) -> str:
    import matplotlib

    cmap = matplotlib.colormaps[name]
    rgb = (np.asarray(cmap(np.linspace(0, 1, 256)))[:, :3] * 255).round().astype(np.uint8)
    return base64.b64encode(rgb.tobytes()).decode("ascii")


def frame_document(spec: dict) -> dict:
    """One frame's spec packed as the player packs it: ``{"spec", "arrays", "cmaps"}``, drawn in
    the browser by ``specdraw.js`` (the dashboard's view panels)."""
    table, cmaps = _Table(), set()
    packed = _pack(spec, table, cmaps)
    return {"spec": packed, "arrays": table.arrays, "cmaps": {c: _lut(c) for c in sorted(cmaps)}}


def script(name: str) -> str:
    """The text of one of the package's browser scripts (``specdraw.js``, ``player.js``)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def player_document(view, title: str | None = None, fps: float = 10) -> dict:
    """The JSON document the player reads: frames, steps, arrays, colormap LUTs."""
    table, cmaps, frames = _Table(), set(), []
    n = frame_count(view)
    with progress(total=n, desc="HTML frames", unit="frame") as bar:
        for i in range(n):
            frames.append(_pack(frame_spec(view, i), table, cmaps))
            bar.update()
    return {"title": title or frames[0]["title"].split(" · step")[0], "fps": fps,
            "steps": [int(s) for s in np.asarray(view.frames)], "frames": frames,
            "arrays": table.arrays, "cmaps": {c: _lut(c) for c in sorted(cmaps)}}


def player_page(view, fps: float = 10, title: str | None = None) -> tuple[str, dict]:
    """``(page, document)``: the player's whole HTML file as text, and its JSON document."""
    doc = player_document(view, title, fps)
    js = script("specdraw.js") + "\n" + script("player.js")
    data = json.dumps(doc, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    page = _TEMPLATE.format(title=_html.escape(doc["title"]), n=len(doc["frames"]), data=data, js=js)
    return page, doc


def save_html(view, path, fps: float = 10, title: str | None = None) -> Path:
    page, _ = player_page(view, fps, title)
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px; color: #222; background: #fff; }}
#controls {{ display: flex; gap: 10px; align-items: center; margin: 8px 0; max-width: 1100px; }}
#controls input[type=range] {{ flex: 1; }}
button {{ font-size: 14px; padding: 4px 12px; min-width: 70px; }}
#label {{ font-variant-numeric: tabular-nums; min-width: 150px; }}
canvas {{ border: 1px solid #ddd; max-width: 100%; height: auto; }}
footer {{ color: #777; font-size: 12px; margin-top: 6px; }}
</style></head>
<body>
<h3 id="title">{title}</h3>
<div id="controls">
 <button id="play">Play</button>
 <input id="slider" type="range" min="0" max="{n}" value="0" step="1" aria-label="frame">
 <span id="label"></span>
 <label>speed <select id="speed"><option value="0.5">0.5x</option><option value="1" selected>1x</option><option value="2">2x</option><option value="4">4x</option></select></label>
</div>
<canvas id="view"></canvas>
<footer>netlapse player: {n} frames, drawn from the recorded arrays. Keys: space plays/pauses, arrows step.</footer>
<script type="application/json" id="netlapse-data">{data}</script>
<script>
{js}
</script>
</body></html>
"""
