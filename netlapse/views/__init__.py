"""Views: pure functions from a recorded run to frames of plain numpy arrays.

Nothing here imports a plotting library or re-runs a model; ``netlapse.render`` draws the
frames, ``netlapse.plot`` and ``netlapse.animate`` are the front doors.
"""

from .compare import VIEWS, Compare, compare
from .distributions import Distributions, distributions
from .function_fit import FunctionFit, function_fit
from .hidden_space import HiddenSpace, hidden_space
from .layer_profile import LayerProfile, layer_profile
from .probes import curve_probe, plane_probe
from .trajectories import Trajectories, trajectories
from .weight_images import WeightImages, weight_images

__all__ = [
    "VIEWS", "plane_probe", "curve_probe",
    "trajectories", "weight_images", "layer_profile", "distributions", "function_fit",
    "hidden_space", "compare",
    "Trajectories", "WeightImages", "LayerProfile", "Distributions", "FunctionFit",
    "HiddenSpace", "Compare",
]
