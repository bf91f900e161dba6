"""The run store: zarr v3 layout, the writer and the committed-prefix reader."""

from .layout import FORMAT_VERSION
from .reader import Histograms, RunReader, Stream

__all__ = ["FORMAT_VERSION", "RunReader", "Stream", "Histograms"]
