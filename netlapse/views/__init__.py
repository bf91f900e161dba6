"""Views: pure functions from a recorded run to frames of plain numpy arrays.

Nothing here imports a plotting library or re-runs a model; renderers in ``netlapse.render``
draw the frames.
"""

from .probes import curve_probe, plane_probe

__all__ = ["plane_probe", "curve_probe"]
