"""Fail the set-up if something replaced the pinned CPU torch with another build."""
import sys

import torch

if not torch.__version__.startswith("2.13.0"):
    sys.exit(f"torch {torch.__version__} is installed; netlapse's set-up pins torch==2.13.0. "
             "Run `make clean` and try again.")
print(f"torch {torch.__version__} ok")
