"""Small real datasets that ship with scikit-learn (no download), shaped like a team's raw batch.

- :func:`load_diagnostics`: Wisconsin breast-cancer diagnostics (569 rows, 30 features), binary target
  ``malignant`` (1 = malignant; scikit-learn codes benign as 1, we flip it so that the positive class
  is the finding), plus a ``sample_id`` id column so tokenization is exercised.
- :func:`load_diabetes`: diabetes progression (442 rows, raw units), regression target
  ``disease_progression``.
- :func:`load_wine`: wine cultivars (178 rows, 13 features), multiclass target ``cultivar``
  (``class_0``/``class_1``/``class_2``).

Column names are snake_case so they are valid contract names; contracts are in ``config/contracts/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _sklearn_datasets() -> Any:
    """scikit-learn's dataset loaders, imported when a sample is loaded: scikit-learn (and scipy.stats with it)
    takes ~1.5 s to import, which ``flywheel demo`` (churn, generated) has no use for."""
    from sklearn import datasets

    return datasets


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def load_diagnostics() -> pd.DataFrame:
    """Breast-cancer diagnostics: ``sample_id``, 30 float features, ``malignant`` (0/1)."""
    bunch = _sklearn_datasets().load_breast_cancer(as_frame=True)
    frame = bunch.data.rename(columns=_snake).astype("float64")
    frame.insert(0, "sample_id", [f"S{i:05d}" for i in range(len(frame))])
    frame["malignant"] = (bunch.target == 0).astype("int64")
    return frame.reset_index(drop=True)


def load_diabetes() -> pd.DataFrame:
    """Diabetes progression in raw units: age, sex (1/2), bmi, bp, s1..s6, ``disease_progression``."""
    bunch = _sklearn_datasets().load_diabetes(as_frame=True, scaled=False)
    frame = bunch.data.rename(columns=_snake)
    frame["age"] = frame["age"].round().astype("int64")
    frame["sex"] = frame["sex"].round().astype("int64")
    frame["disease_progression"] = bunch.target.astype("float64")
    return frame.reset_index(drop=True)


def load_wine() -> pd.DataFrame:
    """Wine recognition: 13 float features and ``cultivar`` (``class_0``, ``class_1``, ``class_2``)."""
    bunch = _sklearn_datasets().load_wine(as_frame=True)
    frame = bunch.data.rename(columns=_snake).astype("float64")
    frame["cultivar"] = np.asarray(bunch.target_names, dtype=object)[bunch.target.to_numpy()]
    return frame.reset_index(drop=True)


LOADERS = {"diagnostics": load_diagnostics, "diabetes": load_diabetes, "wine": load_wine}


def sample(frame: pd.DataFrame, n_rows: int, seed: int = 0) -> pd.DataFrame:
    """A seeded random subset of ``n_rows`` rows in original order (all rows if fewer)."""
    if n_rows >= len(frame):
        return frame
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=n_rows, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame as CSV with a header and no index (``%.6g`` floats keep files small and stable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
    return path
