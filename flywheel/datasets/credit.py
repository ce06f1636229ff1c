"""Synthetic loan-repayment data with protected attributes (``sex``, ``ethnicity``): the fairness example.

Not real people: every row is drawn from the process below (seeded, any size), so the data may be
committed and shared, and the group effects the model card must reveal are known by construction.

Generating process (row ``i``, independent draws; ``N`` normal, ``U`` uniform, ``B`` Bernoulli)::

    sex        = "female" | "male"                     with probability 0.5 each
    ethnicity  = "group_a" | "group_b" | "group_c"     with probability 0.6, 0.3, 0.1
    region     = one of north, south, east, west, central: group_a mostly north/central, group_b mostly
                 south/east, group_c mostly west (a proxy of ethnicity: see REGION_BY_ETHNICITY)
    age        = 21 + round(U(0, 1) ** 1.3 * 49)       (21 to 70 years)
    income     = exp(N(10.4, 0.45)) * (0.85 if female else 1.0) * (0.85 if group_c else 1.0)   (per year)
    debt_ratio = clip(N(0.32, 0.12), 0.01, 0.95)
    history    = clip(round(N(8 * (age - 18), 40)), 0, 600)   (months of credit history)
    late       = Poisson(0.5 + 3 * debt_ratio)
    employment = "permanent" | "temporary" | "self_employed" | "unemployed"   (0.62, 0.2, 0.14, 0.04)
    loan       = round(income * U(0.1, 0.6), -2)
    savings    = missing with probability 0.15, else exp(N(8, 1.2))
    note       = a free-text field (role ``ignore``: never used)

    logit  = 1.6 + 1.1 * log(income / 33000) - 4.2 * (debt_ratio - 0.32) - 0.55 * late
             + 0.004 * (history - 200) - 1.1 * [unemployed] - 0.35 * [temporary]
             - 0.5 * (loan / income - 0.35) + 0.05 * log1p(savings, 0 if missing)
             - 0.45 * [region in (west, south)]          # a historical, region-level bias
    repaid = "yes" with probability sigmoid(logit), else "no"

The protected attributes do not enter ``logit`` directly, but income (lower for female applicants and
group_c) and region (a proxy of ethnicity) do, so a model that never sees ``sex`` or ``ethnicity`` still
selects their groups at different rates: the per-group metrics and the selection-rate ratio show it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = ("north", "south", "east", "west", "central")
#: P(region | ethnicity), in ``REGIONS`` order.
REGION_BY_ETHNICITY = {
    "group_a": (0.4, 0.1, 0.1, 0.05, 0.35),
    "group_b": (0.1, 0.4, 0.35, 0.05, 0.1),
    "group_c": (0.05, 0.15, 0.1, 0.6, 0.1),
}
EMPLOYMENT = ("permanent", "temporary", "self_employed", "unemployed")
_NOTES = ("", "returning customer", "referred by branch", "online application", "")


def credit_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` applications drawn from the process in the module docstring (same seed, same rows)."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=rows)
    ethnicity = rng.choice(list(REGION_BY_ETHNICITY), size=rows, p=[0.6, 0.3, 0.1])
    region = np.empty(rows, dtype=object)
    for group, probs in REGION_BY_ETHNICITY.items():
        mask = ethnicity == group
        region[mask] = rng.choice(REGIONS, size=int(mask.sum()), p=probs)
    age = 21 + np.round(rng.uniform(0, 1, rows) ** 1.3 * 49).astype(int)
    income = np.exp(rng.normal(10.4, 0.45, rows)) * np.where(sex == "female", 0.85, 1.0)
    income *= np.where(ethnicity == "group_c", 0.85, 1.0)
    debt_ratio = np.clip(rng.normal(0.32, 0.12, rows), 0.01, 0.95)
    history = np.clip(np.round(rng.normal(8 * (age - 18), 40)), 0, 600).astype(int)
    late = rng.poisson(0.5 + 3 * debt_ratio)
    employment = rng.choice(EMPLOYMENT, size=rows, p=[0.62, 0.2, 0.14, 0.04])
    loan = np.round(income * rng.uniform(0.1, 0.6, rows), -2)
    savings = np.exp(rng.normal(8, 1.2, rows))
    savings[rng.uniform(size=rows) < 0.15] = np.nan
    logit = (
        1.6
        + 1.1 * np.log(income / 33000)
        - 4.2 * (debt_ratio - 0.32)
        - 0.55 * late
        + 0.004 * (history - 200)
        - 1.1 * (employment == "unemployed")
        - 0.35 * (employment == "temporary")
        - 0.5 * (loan / income - 0.35)
        + 0.05 * np.log1p(np.nan_to_num(savings, nan=0.0))
        - 0.45 * np.isin(region, ("west", "south"))
    )
    repaid = np.where(rng.uniform(size=rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame(
        {
            "application_id": [f"APP{seed:03d}{i:07d}" for i in range(rows)],
            "sex": sex,
            "ethnicity": ethnicity,
            "region": region,
            "age": age,
            "annual_income": np.round(income, 2),
            "debt_ratio": np.round(debt_ratio, 4),
            "credit_history_months": history,
            "late_payments": late,
            "employment": employment,
            "loan_amount": loan,
            "savings": np.round(savings, 2),
            "note": rng.choice(_NOTES, size=rows),
            "repaid": repaid,
        }
    )


def write_credit_csv(path: str | Path, rows: int, seed: int = 0) -> Path:
    """Write :func:`credit_frame` as CSV (missing savings as empty fields); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    credit_frame(rows, seed).to_csv(path, index=False)
    return path
