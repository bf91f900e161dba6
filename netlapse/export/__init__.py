"""Export a recorded run to the tools people already open.

    nl.export.tensorboard("runs/mnist", "tb/mnist")    # metrics, histograms (+ images=True)

Each exporter reads only the store (what ``commit.json`` publishes), so a run being written
exports its committed prefix, and exporting again appends only what is new.
"""

from ._tensorboard import STATE_FILE, tensorboard

__all__ = ["tensorboard", "STATE_FILE"]
