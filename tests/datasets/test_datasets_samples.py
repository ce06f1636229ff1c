"""The scikit-learn samples and the committed fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from contract import load_contract
from validation import validate_files

from flywheel.datasets import (
    CONTRACTS,
    FIXTURE_ROWS,
    contract_path,
    load_diabetes,
    load_diagnostics,
    load_wine,
    write_fixtures,
)
from flywheel.datasets.samples import write_csv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def test_diagnostics() -> None:
    frame = load_diagnostics()
    assert frame.shape == (569, 32)
    assert frame["malignant"].sum() == 212  # 212 malignant, 357 benign in the Wisconsin data
    assert frame["sample_id"].is_unique
    assert "mean_radius" in frame.columns


def test_diabetes() -> None:
    frame = load_diabetes()
    assert frame.shape == (442, 11)
    assert set(frame["sex"]) == {1, 2}
    assert frame["disease_progression"].between(25, 346).all()


def test_wine() -> None:
    frame = load_wine()
    assert frame.shape == (178, 14)
    assert frame["cultivar"].value_counts().to_dict() == {"class_1": 71, "class_0": 59, "class_2": 48}
    assert "od280_od315_of_diluted_wines" in frame.columns


@pytest.mark.parametrize("name", ["diagnostics", "diabetes", "wine"])
def test_full_samples_pass_their_contracts(tmp_path: Path, name: str) -> None:
    loader = {"diagnostics": load_diagnostics, "diabetes": load_diabetes, "wine": load_wine}[name]
    path = write_csv(loader(), tmp_path / f"{name}.csv")
    result = validate_files([path], load_contract(contract_path(name)))
    assert result.passed, result.summary()


def test_every_dataset_has_a_loadable_contract() -> None:
    objectives = {name: load_contract(contract_path(name)).objective for name in CONTRACTS}
    assert objectives == {"churn": "binary", "diagnostics": "binary", "diabetes": "regression", "wine": "multiclass"}


def test_committed_fixtures_are_what_write_fixtures_produces(tmp_path: Path) -> None:
    # The committed samples are regenerated, not hand-edited: a generator change shows up here.
    for path in write_fixtures(tmp_path):
        committed = FIXTURES / path.name
        assert committed.read_bytes() == path.read_bytes(), f"regenerate {committed} with write_fixtures()"
        assert committed.read_text().count("\n") == FIXTURE_ROWS[path.stem] + 1
