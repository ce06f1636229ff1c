"""The dataset tests validate generated data with the step code's contract checks."""

from __future__ import annotations

import sys
from pathlib import Path

STEP_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "tabular"
if str(STEP_DIR) not in sys.path:
    sys.path.insert(0, str(STEP_DIR))  # the step modules import each other flat, as in the container
