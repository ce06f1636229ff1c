"""Evidently's per-column drift statistics on the committed fixtures → ``fixtures/drift/evidently.json``.

Runs in its own virtual environment (``make crosscheck``: Evidently is heavy and never a dependency of the
project or of the job), with nothing of Flywheel imported: for every (reference, window, column) it records
the test Evidently picks by default (``get_stattest``), its score and verdict, and the PSI score.
``tests/pipelines/test_drift_crosscheck.py`` compares our statistics with this file in ``make test``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import evidently
import pandas as pd
from evidently.legacy.calculations.stattests import get_stattest, psi_stat_test
from evidently.legacy.core import ColumnType
from scipy.stats import ks_2samp

FIXTURES = Path(__file__).with_name("fixtures") / "drift"
OUT = FIXTURES / "evidently.json"
CATEGORICAL = ("plan", "active")


def main() -> int:
    cases = []
    for reference in ("small", "large"):
        ref = pd.read_csv(FIXTURES / f"reference_{reference}.csv")
        for window in ("same", "shifted"):
            cur = pd.read_csv(FIXTURES / f"current_{window}.csv")
            for column in ref.columns:
                kind = ColumnType.Categorical if column in CATEGORICAL else ColumnType.Numerical
                r, c = ref[column].dropna(), cur[column].dropna()
                test = get_stattest(r, c, kind, None)
                result = test(r, c, kind, None)
                psi = psi_stat_test(r, c, kind, None)
                extra = {"ks_statistic": float(ks_2samp(r, c).statistic)} if test.name == "ks" else {}
                cases.append(
                    {
                        **extra,
                        "reference": reference,
                        "window": window,
                        "column": column,
                        "test": test.name,
                        "score": float(result.drift_score),
                        "threshold": float(result.actual_threshold),
                        "drifted": bool(result.drifted),
                        "psi": float(psi.drift_score),
                        "psi_drifted": bool(psi.drifted),
                    }
                )
    data = {"evidently_version": evidently.__version__, "pandas_version": pd.__version__, "cases": cases}
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if "--check" in sys.argv[1:]:
        # Evidently orders categories through a set: sums may differ in the last bit from run to run.
        if not _same(json.loads(OUT.read_text(encoding="utf-8")), data):
            print(f"{OUT} is stale: run `make crosscheck` and commit it", file=sys.stderr)
            return 1
        print(f"{OUT} matches Evidently {evidently.__version__}")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(cases)} cases, Evidently {evidently.__version__})")
    return 0


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


if __name__ == "__main__":
    sys.exit(main())
