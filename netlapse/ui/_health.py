"""The dashboard's health panel and badges: the doctor's report on a run (``nl.diagnose``,
the committed prefix of a run being written) and one frame of each finding's view."""

from __future__ import annotations

import numpy as np

__all__ = ["health", "finding_frame"]


def health(reader) -> dict:
    """The report as ``netlapse doctor --json`` prints it, plus problem and warning counts."""
    from ..doctor import diagnose_data
    from ..doctor._data import from_reader

    # streams read one after the other: the server's other requests share this reader
    report = diagnose_data(from_reader(reader), run=str(reader.path)).to_dict()
    sev = [f["severity"] for f in report["findings"]]
    return {**report, "problems": sev.count("problem"), "warnings": sev.count("warning")}


def finding_frame(reader, report: dict, i: int) -> dict:
    """The frame of finding ``i``'s view at its first step, packed for ``specdraw.js``:
    ``{"step", "prev", "next", "spec", "arrays", "cmaps", "view"}``."""
    from .. import views
    from ..render.html import frame_document
    from ..render.spec import frame_spec

    findings = report["findings"]
    if not 0 <= i < len(findings):
        raise LookupError(f"the report has {len(findings)} findings; no finding {i}")
    f = findings[i]
    name, args = f["view"]["name"], dict(f["view"].get("args", {}))
    v = getattr(views, name)(reader, **args)    # layer_profile: args hold the first step
    steps = np.asarray(v.frames if name == "layer_profile" else v.steps)
    at = int(np.clip(np.searchsorted(steps, f["first_step"], side="right") - 1, 0, len(steps) - 1))
    doc = frame_document(frame_spec(v, at))
    return {"step": int(steps[at]), "prev": None, "next": None, "view": f["view"], **doc}
