"""The tour behind ``netlapse demo``: one scene per user story in shared/seeds.

Each scene module has ``NAME``, ``TITLE``, ``STORY`` and ``run(out: Path, quick: bool) -> dict``
returning at least ``{"runs": [paths], "summary": "one line of what it found"}``.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from ..errors import NetlapseError

__all__ = ["SCENES", "run_tour", "load_scene"]

SCENES = {
    "single-neuron": "single_neuron",
}


def load_scene(name: str):
    if name not in SCENES:
        raise NetlapseError(f"no scene {name!r}; scenes: {', '.join(SCENES)}.")
    return importlib.import_module(f".{SCENES[name]}", __name__)


def run_tour(scenes: list[str] | None = None, out="netlapse-demo", quick: bool = False) -> int:
    out = Path(out)
    names = scenes or list(SCENES)
    modules = [load_scene(n) for n in names]   # fail on a bad name before training anything
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for mod in modules:
        print(f"\n== {mod.NAME}: {mod.TITLE}")
        result = mod.run(out, quick=quick)
        print(f"   {result['summary']}")
        for run_path in result["runs"]:
            print(f"   run: {run_path}")
    print(f"\nDone in {time.perf_counter() - start:.1f} s. Look at a run with:")
    first = next(iter(result["runs"]), out / "runs")
    print(f"   netlapse info {first}")
    return 0
