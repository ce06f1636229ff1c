"""Example datasets for the ``tabular`` pipeline template, each with a data contract in ``config/contracts/``.

=============  ==========  =====================  ==================================================
name           objective   contract               source
=============  ==========  =====================  ==================================================
churn          binary      churn.json             :mod:`flywheel.datasets.churn` (synthetic, any size)
credit         binary      examples/fairness/     :mod:`flywheel.datasets.credit` (synthetic, any size; protected
                           contracts/credit.json  attributes ``sex`` and ``ethnicity``; team in that config dir)
diagnostics    binary      diagnostics.json       scikit-learn breast-cancer data
diabetes       regression  diabetes.json          scikit-learn diabetes data
wine           multiclass  wine.json              scikit-learn wine data
=============  ==========  =====================  ==================================================

:func:`write_fixtures` regenerates the small committed samples under ``tests/fixtures/data/``.
"""

from __future__ import annotations

from pathlib import Path

from flywheel.datasets.churn import (
    churn_frame,
    iter_churn,
    iter_churn_tables,
    write_churn_csv,
    write_churn_shards,
)
from flywheel.datasets.credit import credit_frame, write_credit_csv
from flywheel.datasets.samples import LOADERS, load_diabetes, load_diagnostics, load_wine, sample, write_csv

__all__ = [
    "CONTRACTS",
    "FIXTURE_ROWS",
    "LOADERS",
    "churn_frame",
    "contract_path",
    "credit_frame",
    "iter_churn",
    "iter_churn_tables",
    "load_diabetes",
    "load_diagnostics",
    "load_wine",
    "sample",
    "write_churn_csv",
    "write_churn_shards",
    "write_credit_csv",
    "write_csv",
    "write_fixtures",
]

#: Dataset name -> contract file name under ``config/contracts/``.
CONTRACTS = {"churn": "churn.json", "diagnostics": "diagnostics.json", "diabetes": "diabetes.json", "wine": "wine.json"}
#: Rows of each committed sample (a few hundred at most; the seed is fixed).
FIXTURE_ROWS = {"churn": 300, "diagnostics": 300, "diabetes": 300, "wine": 178}
FIXTURE_SEED = 7


def contract_path(name: str, repo_root: str | Path | None = None) -> Path:
    """Path of dataset ``name``'s contract in a source checkout (``config/contracts/<name>.json``)."""
    root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]
    return root / "config" / "contracts" / CONTRACTS[name]


def write_fixtures(directory: str | Path) -> list[Path]:
    """Write the committed samples (``<name>.csv``) into ``directory``; byte-stable for a given version."""
    directory = Path(directory)
    paths = [write_churn_csv(directory / "churn.csv", FIXTURE_ROWS["churn"], seed=FIXTURE_SEED)]
    for name, loader in LOADERS.items():
        paths.append(write_csv(sample(loader(), FIXTURE_ROWS[name], seed=FIXTURE_SEED), directory / f"{name}.csv"))
    return paths
