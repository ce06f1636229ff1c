"""Our per-column drift statistics agree with Evidently's on the same data, per column type.

``fixtures/drift/evidently.json`` holds what Evidently computes on the committed fixtures (written by
``make crosscheck`` in Evidently's own venv: ``tests/pipelines/evidently_crosscheck.py``). Our side runs the
production path: the reference is profiled into baseline statistics (``profile_frame``, the format the
tabular evaluation registers) and the window compared with them.

Stated tolerances (docs/monitoring.md): categorical and discrete columns are counted exactly, so their
chi-square / z p-values, Jensen-Shannon distances and PSI agree to 1e-6. Continuous columns are compared
at the baseline sketch's 1 % relative resolution: normed Wasserstein and PSI within 0.005, the KS statistic
within 0.01 and its p-value within 0.15 (a p-value moves a lot for a small change of the statistic). The
test chosen and the drift verdict are identical in every case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipelines.monitor import drift

FIXTURES = Path(__file__).with_name("fixtures") / "drift"
EVIDENTLY = json.loads((FIXTURES / "evidently.json").read_text(encoding="utf-8"))
CATEGORICAL = ["plan", "active"]
#: Evidently's test names → ours.
TESTS = {"ks": "ks", "chisquare": "chi_square", "z": "z", "wasserstein": "wasserstein_normed",
         "jensenshannon": "jensen_shannon"}  # fmt: skip
EXACT = 1e-6
CONTINUOUS = {"wasserstein": 0.005, "psi": 0.005, "ks_statistic": 0.01, "ks": 0.15}


def _frame(name: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURES / f"{name}.csv", dtype={c: str for c in CATEGORICAL})


REFERENCES = {
    r: drift.load_reference(drift.profile_frame(_frame(f"reference_{r}"), CATEGORICAL)) for r in ("small", "large")
}
WINDOWS = {w: _frame(f"current_{w}") for w in ("same", "shifted")}


def _ours(case: dict[str, Any], psi: bool) -> dict[str, Any]:
    window = WINDOWS[case["window"]][[case["column"]]]
    report = drift.compare(REFERENCES[case["reference"]], window, drift.MonitorSettings(min_rows=1, psi=psi))
    return dict(report["features"][case["column"]])


def _id(case: dict[str, Any]) -> str:
    return f"{case['reference']}-{case['window']}-{case['column']}-{case['test']}"


def test_the_reference_file_names_evidentlys_version_and_covers_every_column_type() -> None:
    assert EVIDENTLY["evidently_version"]
    assert {c["test"] for c in EVIDENTLY["cases"]} == set(TESTS)
    assert any(c["drifted"] for c in EVIDENTLY["cases"]) and any(not c["drifted"] for c in EVIDENTLY["cases"])


@pytest.mark.parametrize("case", EVIDENTLY["cases"], ids=_id)
def test_default_test_score_and_verdict_agree_with_evidently(case: dict[str, Any]) -> None:
    ours = _ours(case, psi=False)
    assert ours["test"] == TESTS[case["test"]]
    assert ours["drifted"] == case["drifted"]
    tolerance = CONTINUOUS.get(case["test"], EXACT) if case["column"] == "amount" else EXACT
    assert ours["score"] == pytest.approx(case["score"], abs=tolerance)
    if case["test"] == "ks":
        assert ours["statistic"] == pytest.approx(case["ks_statistic"], abs=CONTINUOUS["ks_statistic"])


@pytest.mark.parametrize("case", EVIDENTLY["cases"], ids=_id)
def test_psi_agrees_with_evidently(case: dict[str, Any]) -> None:
    ours = _ours(case, psi=True)
    tolerance = CONTINUOUS["psi"] if case["column"] == "amount" else EXACT
    assert ours["score"] == pytest.approx(case["psi"], abs=tolerance)
    assert ours["drifted"] == case["psi_drifted"]
