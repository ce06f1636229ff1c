"""The committed fixture data of the Evidently cross-check (tests/pipelines/fixtures/drift/*.csv).

Regenerate with ``python -m tests.pipelines.drift_fixtures`` (seeded: the same bytes every time). Four
column types: continuous numeric, discrete numeric with 4 values (compared as categories), categorical,
binary; two reference sizes (600 rows: the hypothesis tests; 3000 rows: the distances) and two windows
(``current_same``: the reference's distribution, ``current_shifted``: every column moved).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FIXTURES = Path(__file__).with_name("fixtures") / "drift"
CATEGORICAL = ("plan", "active")
NUMERIC = ("amount", "visits")


def make(n: int, seed: int, shifted: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan_p = [0.35, 0.3, 0.2, 0.15] if shifted else [0.4, 0.3, 0.2, 0.1]
    return pd.DataFrame(
        {
            "amount": (rng.lognormal(3.5 + (0.15 if shifted else 0.0), 0.5, n)).round(2),
            "visits": rng.choice([1, 2, 3, 4], n, p=[0.4, 0.3, 0.2, 0.1] if not shifted else [0.3, 0.3, 0.25, 0.15]),
            "plan": rng.choice(["basic", "plus", "pro", "team"], n, p=plan_p),
            "active": rng.choice(["yes", "no"], n, p=[0.62, 0.38] if shifted else [0.7, 0.3]),
        }
    )


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    make(600, 11).to_csv(FIXTURES / "reference_small.csv", index=False)
    make(3000, 12).to_csv(FIXTURES / "reference_large.csv", index=False)
    make(1500, 13).to_csv(FIXTURES / "current_same.csv", index=False)
    make(1500, 14, shifted=True).to_csv(FIXTURES / "current_shifted.csv", index=False)


if __name__ == "__main__":
    main()
