"""Synthetic customer-churn records at any size, seeded and streamed in chunks.

Rows are generated in fixed blocks of :data:`BLOCK_ROWS`, each from its own random stream
``(seed, block index)``, so row ``i`` depends only on ``seed`` and ``i``: the same seed gives
byte-identical CSV whatever the chunk size, a shard file is exactly a slice of the single file, and
memory stays bounded by one chunk whatever the total.

Columns (see ``config/contracts/churn.json``):

- ``customer_id`` (id), ``name``, ``email``, ``phone`` (direct identifiers; reserved example domains and
  555-01xx fictional numbers), ``date_of_birth``, ``postcode`` (5-digit ZIP), ``signup_date``
  (quasi-identifiers);
- behaviour: ``tenure_months``, ``contract_type``, ``payment_method``, ``internet_service``,
  ``paperless_billing``, ``num_products``, ``monthly_charges``, ``total_charges`` (empty for customers
  in their first month), ``support_calls``, ``avg_monthly_gb``, ``satisfaction_score`` (empty when the
  survey was not answered);
- target ``churned`` (0/1, about 26% positive). The churn log-odds are a known function of contract
  type, tenure, charges, support calls, payment method, internet service, satisfaction and age
  (:data:`CHURN_WEIGHTS`), with Bernoulli noise: the true model's AUC is about 0.86, so a fitted model
  reaches 0.8-0.85 (not 1) given enough rows.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

BLOCK_ROWS = 8192
REFERENCE_DATE = np.datetime64("2026-01-01")

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard "
    "Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty "
    "Anthony Sandra Mark Margaret Donald Ashley Steven Kimberly Andrew Emily Paul Donna Joshua "
    "Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy Stephanie Ronald "
    "Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Dorothy Jacob Amy Gary Kathleen Nicholas "
    "Angela Eric Shirley Jonathan Emma Stephen Brenda Larry Pamela Justin Nicole Scott Anna Brandon "
    "Samantha Benjamin Katherine Samuel Christine Gregory Debra Alexander Rachel Patrick Carolyn "
    "Frank Janet Raymond Maria Jack Olivia Dennis Heather Jerry Helen Tyler Catherine Aaron Diane"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers "
    "Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson "
    "Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders "
    "Patel Myers Long Ross Foster Jimenez Powell"
).split()
DOMAINS = ("example.com", "example.org", "example.net", "mail.example")  # RFC 2606 reserved
CONTRACT_TYPES = ("month_to_month", "one_year", "two_year")
PAYMENT_METHODS = ("electronic_check", "mailed_check", "bank_transfer", "credit_card")
INTERNET_SERVICES = ("dsl", "fiber_optic", "none")
COLUMNS = (
    "customer_id",
    "name",
    "email",
    "phone",
    "date_of_birth",
    "postcode",
    "signup_date",
    "tenure_months",
    "contract_type",
    "payment_method",
    "internet_service",
    "paperless_billing",
    "num_products",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "avg_monthly_gb",
    "satisfaction_score",
    "churned",
)
#: The true churn model (log-odds); documented so tests and readers know what signal exists.
CHURN_WEIGHTS = {
    "intercept": -2.15,
    "month_to_month": 1.43,
    "two_year": -1.3,
    "tenure_months": -0.036,
    "monthly_charges_minus_70": 0.023,
    "support_calls": 0.42,
    "electronic_check": 0.58,
    "fiber_optic": 0.45,
    "satisfaction_minus_3": -0.58,
    "paperless_billing": 0.26,
    "age_under_30": 0.39,
}


def _block(seed: int, block: int) -> pa.Table:
    """All :data:`BLOCK_ROWS` rows of block ``block`` (random stream ``(seed, block)``)."""
    n = BLOCK_ROWS
    rng = np.random.default_rng([seed, block])
    index = np.arange(block * n, (block + 1) * n, dtype=np.int64)

    # Identifiers. 48271 is a unit mod 10^9, so ids are unique for the first 10^9 rows.
    scrambled = (index * 48271 + 7919 * (seed % 1000 + 1)) % 1_000_000_000
    customer_id = pc.binary_join_element_wise(
        "C", pc.utf8_lpad(pc.cast(pa.array(scrambled), pa.string()), width=9, padding="0"), ""
    )
    first = pa.array(np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)])
    last = pa.array(np.array(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)])
    name = pc.binary_join_element_wise(first, last, " ")
    number = pc.cast(pa.array(rng.integers(1, 10_000, n)), pa.string())
    domain = pa.array(np.array(DOMAINS, dtype=object)[rng.integers(0, len(DOMAINS), n)])
    local = pc.binary_join_element_wise(pc.utf8_lower(first), pc.utf8_lower(last), number, ".")
    email = pc.binary_join_element_wise(local, domain, "@")
    area = pc.cast(pa.array(rng.integers(201, 990, n)), pa.string())
    line = pc.utf8_lpad(pc.cast(pa.array(rng.integers(100, 200, n)), pa.string()), width=4, padding="0")
    phone = pc.binary_join_element_wise("+1", area, "555", line, "-")

    age_days = rng.integers(18 * 365, 88 * 365, n)
    dob = REFERENCE_DATE - age_days.astype("timedelta64[D]")
    age_years = age_days / 365.25
    zip3 = rng.choice(np.arange(10, 1000), size=n, p=_zip_weights())
    postcode = pc.utf8_lpad(pc.cast(pa.array(zip3 * 100 + rng.integers(0, 100, n)), pa.string()), width=5, padding="0")

    # Behaviour. Long tenures and long contracts go together.
    tenure = np.clip(np.round(rng.gamma(1.3, 22.0, n)), 0, 72).astype(np.int64)
    long_term = np.clip(tenure / 72, 0, 1)
    ct_p = np.stack([0.65 - 0.45 * long_term, 0.22 + 0.13 * long_term, 0.13 + 0.32 * long_term], 1)
    contract = _choose(rng, ct_p)
    payment = rng.choice(4, size=n, p=[0.34, 0.22, 0.22, 0.22])
    internet = rng.choice(3, size=n, p=[0.34, 0.44, 0.22])
    paperless = rng.random(n) < 0.59
    products = np.clip(rng.poisson(1.2, n) + 1, 1, 6).astype(np.int64)
    base = np.array([50.0, 80.0, 22.0])[internet]
    monthly = np.round(np.clip(base + 6.0 * (products - 1) + rng.normal(0, 8, n), 18.0, 150.0), 2)
    total = np.round(tenure * monthly * rng.uniform(0.92, 1.05, n), 2)
    total_charges = pa.array(total, mask=tenure == 0)
    calls = np.clip(rng.poisson(1.1 + 0.6 * (internet == 1), n), 0, 15).astype(np.int64)
    gb = np.round(np.where(internet == 2, 0.0, rng.lognormal(3.4, 0.7, n)), 1)
    satisfaction = np.clip(np.round(rng.normal(3.4 - 0.25 * calls, 1.0, n)), 1, 5).astype(np.int64)
    answered = rng.random(n) < 0.7
    signup = REFERENCE_DATE - (tenure * 30.44 + rng.integers(0, 30, n)).astype("timedelta64[D]")

    w = CHURN_WEIGHTS
    logit = (
        w["intercept"]
        + w["month_to_month"] * (contract == 0)
        + w["two_year"] * (contract == 2)
        + w["tenure_months"] * tenure
        + w["monthly_charges_minus_70"] * (monthly - 70)
        + w["support_calls"] * calls
        + w["electronic_check"] * (payment == 0)
        + w["fiber_optic"] * (internet == 1)
        + w["satisfaction_minus_3"] * np.where(answered, satisfaction - 3, 0)
        + w["paperless_billing"] * paperless
        + w["age_under_30"] * (age_years < 30)
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    return pa.table(
        {
            "customer_id": customer_id,
            "name": name,
            "email": email,
            "phone": phone,
            "date_of_birth": pa.array(dob, pa.date32()),
            "postcode": postcode,
            "signup_date": pa.array(signup, pa.date32()),
            "tenure_months": tenure,
            "contract_type": pa.array(np.array(CONTRACT_TYPES, dtype=object)[contract]),
            "payment_method": pa.array(np.array(PAYMENT_METHODS, dtype=object)[payment]),
            "internet_service": pa.array(np.array(INTERNET_SERVICES, dtype=object)[internet]),
            "paperless_billing": paperless,
            "num_products": products,
            "monthly_charges": monthly,
            "total_charges": total_charges,
            "support_calls": calls,
            "avg_monthly_gb": gb,
            "satisfaction_score": pa.array(satisfaction, mask=~answered),
            "churned": churned,
        }
    )


@functools.lru_cache(maxsize=1)
def _zip_weights() -> np.ndarray:
    """A fixed, uneven population over 3-digit ZIP prefixes 010..999 (denser in a few metros)."""
    prefixes = np.arange(10, 1000)
    weights = 1.0 + 30.0 * np.isin(prefixes, (100, 112, 200, 606, 900, 941, 981, 21, 303, 770))
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def _choose(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row from row-specific probabilities."""
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    chosen: np.ndarray = (rng.random(len(probs))[:, None] > cum[:, :-1]).sum(axis=1)
    return chosen


def iter_churn_tables(n_rows: int, seed: int = 0, chunk_rows: int = 100_000, start: int = 0) -> Iterator[pa.Table]:
    """Rows ``start .. start + n_rows`` as Arrow tables of ``chunk_rows`` rows (the last may be short)."""
    if n_rows < 0 or chunk_rows < 1 or start < 0:
        raise ValueError("n_rows and start must be >= 0 and chunk_rows >= 1")
    stop = start + n_rows
    pending: list[pa.Table] = []
    buffered = 0
    block = start // BLOCK_ROWS
    while block * BLOCK_ROWS < stop:
        lo = max(start - block * BLOCK_ROWS, 0)
        hi = min(stop - block * BLOCK_ROWS, BLOCK_ROWS)
        pending.append(_block(seed, block).slice(lo, hi - lo))
        buffered += hi - lo
        block += 1
        while buffered >= chunk_rows:
            table = pa.concat_tables(pending)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            pending, buffered = ([rest] if rest.num_rows else []), rest.num_rows
    if buffered:
        yield pa.concat_tables(pending)


def iter_churn(n_rows: int, seed: int = 0, chunk_rows: int = 100_000, start: int = 0) -> Iterator[pd.DataFrame]:
    """Like :func:`iter_churn_tables`, as pandas DataFrames (dates as ``datetime64``)."""
    for table in iter_churn_tables(n_rows, seed, chunk_rows, start):
        yield table.to_pandas(date_as_object=False).reset_index(drop=True)


def churn_frame(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """All ``n_rows`` rows in one DataFrame (for small sizes)."""
    chunks = list(iter_churn(n_rows, seed, chunk_rows=max(n_rows, 1)))
    return chunks[0] if chunks else pd.DataFrame(columns=list(COLUMNS))


def write_churn_csv(path: str | Path, n_rows: int, seed: int = 0, chunk_rows: int = 100_000, start: int = 0) -> Path:
    """Write rows ``start .. start + n_rows`` as one CSV file (header once); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    with path.open("wb") as sink:
        for table in iter_churn_tables(n_rows, seed, chunk_rows, start):
            if writer is None:
                writer = pacsv.CSVWriter(sink, table.schema)
            writer.write_table(table)
        if writer is None:  # zero rows: still a valid CSV with its header
            sink.write((",".join(f'"{c}"' for c in COLUMNS) + "\n").encode())
        else:
            writer.close()
    return path


def write_churn_shards(
    directory: str | Path, n_rows: int, n_shards: int, seed: int = 0, chunk_rows: int = 100_000
) -> list[Path]:
    """Write ``n_rows`` rows as ``n_shards`` CSV files ``part-00000.csv`` ... (contiguous row ranges)."""
    if n_shards < 1:
        raise ValueError("n_shards must be >= 1")
    bounds = [n_rows * k // n_shards for k in range(n_shards + 1)]
    return [
        write_churn_csv(Path(directory) / f"part-{k:05d}.csv", bounds[k + 1] - bounds[k], seed, chunk_rows, bounds[k])
        for k in range(n_shards)
    ]
