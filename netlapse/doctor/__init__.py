"""The doctor: a diagnosis of training health read from a run's store alone.

``diagnose(run_or_path, step=None)`` runs every instrument on what the run holds (its
committed prefix while it is being written) and returns a ``Report`` of ``Finding``s. The
instruments, their formulas and thresholds are documented in their modules and in
docs/doctor.md; ``INSTRUMENTS`` lists them in the order they run.
"""

from __future__ import annotations

from ._common import Skip
from ._gradients import check_exploding, check_vanishing
from ._live import HealthWarning
from ._report import KINDS, Finding, Report, format_report
from ._units import check_dead, check_saturated
from ._updates import check_unused, check_update_ratio_high, check_update_ratio_low
from ._values import check_loss, check_nonfinite

__all__ = ["diagnose", "diagnose_data", "Report", "Finding", "KINDS", "INSTRUMENTS", "HealthWarning",
           "CHEAP", "format_report"]

# instrument name -> check(data) -> list[Finding]; names are the finding kinds they report
INSTRUMENTS = {
    "nonfinite": check_nonfinite,
    "loss_diverging": check_loss,
    "vanishing_gradients": check_vanishing,
    "exploding_gradients": check_exploding,
    "dead_units": check_dead,
    "saturated_units": check_saturated,
    "update_ratio_high": check_update_ratio_high,
    "update_ratio_low": check_update_ratio_low,
    "unused_parameters": check_unused,
}
# the instruments live alerts run on the writer thread as steps commit
CHEAP = ("nonfinite", "loss_diverging", "vanishing_gradients", "exploding_gradients",
         "dead_units", "saturated_units", "update_ratio_high", "update_ratio_low")

_ORDER = {"problem": 0, "warning": 1}


def diagnose_data(data, instruments=None, run: str = "") -> Report:
    """Run ``instruments`` (names; default all) on a ``RunData``."""
    findings, checked, skipped = [], [], []
    for name in instruments or INSTRUMENTS:
        try:
            found = INSTRUMENTS[name](data)
        except Skip as why:
            skipped.append({"instrument": name, "why": str(why)})
            continue
        checked.append(name)
        findings.extend(found)
    findings = _explained(findings)
    findings.sort(key=lambda f: (_ORDER[f.severity], f.first_step, KINDS.index(f.kind)))
    return Report(run or data.name, data.step_range(), findings, checked, skipped)


def _explained(findings: list) -> list:
    """Leave out of ``unused_parameters`` what another finding explains: a gradient that is
    exactly zero in a layer with vanishing gradients (saturated or dead units upstream), and
    weights that never change while updates are flagged as tiny (below float precision)."""
    unused = [f for f in findings if f.kind == "unused_parameters"]
    if not unused:
        return findings
    from ._updates import explain_unused

    vanishing = {s.split("/", 1)[1] for f in findings if f.kind == "vanishing_gradients"
                 for s in f.streams}
    tiny = any(f.kind == "update_ratio_low" for f in findings)
    out = [f for f in findings if f.kind != "unused_parameters"]
    for f in unused:
        g = explain_unused(f, vanishing, tiny)
        if g is not None:
            out.append(g)
    return out


def diagnose(run_or_path, step: int | None = None) -> Report:
    """Diagnose a run (a path, an open ``netlapse.Run`` or a reader) as of ``step``
    (default: the last committed step). Reads only the store.

    >>> report = nl.diagnose("runs/mnist")
    >>> report.ok, [f.kind for f in report]
    """
    from ..views._common import as_reader
    from ._data import from_reader

    reader = as_reader(run_or_path)
    data = from_reader(reader, until=step)
    data.prefetch()
    return diagnose_data(data, run=str(reader.path))
