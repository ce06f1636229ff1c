"""Fixtures for the ``tabular`` step code (helpers live in ``tabular_helpers``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tabular_helpers import CONTRACTS, PipelineRun, fixture_writer, generated_churn_writer, run_chain


@pytest.fixture(scope="session")
def chains(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PipelineRun]:
    """One full chain per example dataset (binary churn + diagnostics, regression, multiclass)."""
    base = tmp_path_factory.mktemp("chains")
    writers: dict[str, Callable[[Path], None]] = {
        "churn": generated_churn_writer,
        "diagnostics": fixture_writer("diagnostics"),
        "diabetes": fixture_writer("diabetes"),
        "wine": fixture_writer("wine"),
    }
    return {name: run_chain(base / name, name, w) for name, w in writers.items()}


@pytest.fixture(scope="session")
def churn_contract() -> Any:
    """The churn data contract."""
    from contract import load_contract

    return load_contract(CONTRACTS / "churn.json")
