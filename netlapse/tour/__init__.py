"""The tour behind ``netlapse demo``: one scene per user story in shared/seeds.

Each scene module has ``NAME``, ``TITLE``, ``STORY`` (what the seed's author fought), ``SEE``
(what to look at in its pictures), ``CHANGES`` (what differs from the seed's settings) and
``run(out: Path, quick: bool) -> dict`` returning ``{"runs": [paths], "summary": str,
"findings": {...}, "pictures": [{"file", "caption"}]}``. Runs go to ``out/runs/``, pictures
to ``out/``, and ``run_tour`` writes ``out/index.html``.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from ..errors import NetlapseError, nearest_names

__all__ = ["SCENES", "run_tour", "tour", "load_scene", "TOUR_FILE"]

TOUR_FILE = "tour.json"   # each scene's findings, pictures and runs, as written by run_tour

SCENES = {
    "single-neuron": "single_neuron",
    "digit-filters": "digit_filters",
    "deep-saturation": "deep_saturation",
    "poly-fit": "poly_fit",
    "rings": "rings",
}


def load_scene(name: str):
    if name not in SCENES:
        hint = nearest_names(name, list(SCENES))
        did = f" Did you mean {', '.join(repr(h) for h in hint)}?" if hint else ""
        raise NetlapseError(f"no scene {name!r}.{did} Scenes: {', '.join(SCENES)}.")
    return importlib.import_module(f".{SCENES[name]}", __name__)


def tour(scenes: list[str] | None = None, out="netlapse-demo", quick: bool = False) -> list:
    """Run the scenes; write ``out/index.html`` and ``out/tour.json``; return (module, result) pairs."""
    from .._jsonio import write_json_atomic
    from .gallery import write_gallery

    out = Path(out).resolve()   # scenes return absolute run paths; the gallery links relative ones
    names = scenes or list(SCENES)
    modules = [load_scene(n) for n in names]   # fail on a bad name before training anything
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = []
    for mod in modules:
        print(f"\n== {mod.NAME}: {mod.TITLE}", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        result = mod.run(out, quick=quick)
        print(f"   {result['summary']}  [{time.perf_counter() - t0:.1f} s, "
              f"cpu {time.process_time() - c0:.1f} s]", flush=True)
        for entry in result.get("pictures", []):
            print(f"   picture: {out / entry['file']}")
        done.append((mod, result))
    seconds = time.perf_counter() - start
    index = write_gallery(out, done, quick=quick, seconds=seconds)
    write_json_atomic(out / TOUR_FILE, {
        "quick": quick, "seconds": seconds,
        "scenes": {m.NAME: {"summary": r["summary"], "findings": r["findings"],
                            "pictures": r.get("pictures", []),
                            "runs": [str(Path(p).relative_to(out)) for p in r["runs"]]}
                   for m, r in done}})
    print(f"\nDone in {seconds:.1f} s. Open the gallery: {index}")
    print(f"Look at a run with: netlapse info {done[0][1]['runs'][0]}")
    return done


def run_tour(scenes: list[str] | None = None, out="netlapse-demo", quick: bool = False) -> int:
    """``netlapse demo``: run the tour, print where everything went; 0 on success."""
    tour(scenes, out, quick)
    return 0
