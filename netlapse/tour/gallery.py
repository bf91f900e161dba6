"""The tour's ``index.html``: one section per scene with its pictures and what to see in them."""

from __future__ import annotations

import html
from pathlib import Path

__all__ = ["write_gallery"]

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; }
.see { background: #f3f7ff; padding: .6em .8em; border-left: 4px solid #4a7bd0; }
.changes { color: #555; font-size: .92em; }
.found { font-family: ui-monospace, monospace; font-size: .9em; }
figure { margin: 1.2em 0; } figcaption { color: #444; font-size: .92em; }
img, video { max-width: 100%; border: 1px solid #eee; }
iframe { width: 100%; height: 620px; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 .25em; }
"""


def _picture(entry: dict) -> str:
    name = html.escape(entry["file"])
    caption = html.escape(entry["caption"])
    suffix = Path(entry["file"]).suffix.lower()
    if suffix == ".mp4":
        body = f'<video src="{name}" controls autoplay loop muted playsinline></video>'
    elif suffix == ".html":
        body = (f'<iframe src="{name}" title="{caption}"></iframe>'
                f'<br><a href="{name}">open the player on its own</a>')
    else:
        body = f'<img src="{name}" alt="{caption}">'
    return f"<figure>{body}<figcaption>{caption} <code>{name}</code></figcaption></figure>"


def _section(mod, result: dict, out: Path) -> str:
    runs = ", ".join(f"<code>{html.escape(str(Path(p).relative_to(out)))}</code>"
                     for p in result["runs"])
    pictures = "\n".join(_picture(e) for e in result.get("pictures", []))
    return f"""
<section id="{html.escape(mod.NAME)}">
<h2>{html.escape(mod.NAME)}: {html.escape(mod.TITLE)}</h2>
<p>{html.escape(mod.STORY)}</p>
<p class="see"><b>What to see.</b> {html.escape(mod.SEE)}</p>
<p class="found"><b>Found:</b> {html.escape(result["summary"])}</p>
<p class="changes"><b>Changed from the seed.</b> {html.escape(mod.CHANGES)}</p>
{pictures}
<p class="changes">Runs: {runs}. Look inside one with <code>netlapse info RUN</code>.</p>
</section>"""


def write_gallery(out, scenes: list[tuple], quick: bool, seconds: float) -> Path:
    """Write ``out/index.html`` for ``scenes``: (module, result) pairs, in tour order."""
    out = Path(out).resolve()
    toc = " · ".join(f'<a href="#{html.escape(m.NAME)}">{html.escape(m.NAME)}</a>'
                     for m, _ in scenes)
    mode = "quick mode (smaller sweeps, fewer frames)" if quick else "full tour"
    body = "\n".join(_section(m, r, out) for m, r in scenes)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>netlapse demo</title><style>{_STYLE}</style></head>
<body>
<h1>netlapse demo</h1>
<p>Each scene reproduces one of the user stories netlapse was made from: it trains a small,
seeded PyTorch network, records it with <code>netlapse.watch</code> into <code>runs/</code>,
and draws these pictures from the recorded runs alone ({mode}, {seconds:.0f} s).</p>
<p>{toc}</p>
{body}
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
