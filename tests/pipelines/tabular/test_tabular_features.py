"""Pure functions of the shared feature transformation (features.py)."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest
from contract import contract_from_dict, load_contract
from features import (
    HASH_BUCKETS,
    HmacTokenizer,
    age_band,
    class_labels,
    encode,
    encode_labels,
    prefix,
    pseudonymize,
    serving_columns,
    serving_names,
    stable_bucket,
    year,
)
from tabular_helpers import CONTRACTS, FIXTURES, PII_KEY

KEY = PII_KEY.encode()


@pytest.fixture
def churn_raw() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "churn.csv", dtype={"postcode": str}, parse_dates=["date_of_birth", "signup_date"])


def test_serving_columns_follow_contract_order_and_generalization(churn_contract) -> None:
    cols = serving_columns(churn_contract)
    assert [c.name for c in cols][:4] == [
        "date_of_birth_age_band",
        "postcode_prefix",
        "signup_date_year",
        "tenure_months",
    ]
    kinds = {c.name: c.kind for c in cols}
    assert kinds["date_of_birth_age_band"] == "age_band"
    assert kinds["postcode_prefix"] == "hashed"
    assert kinds["contract_type"] == "category"
    assert kinds["paperless_billing"] == "bool"
    # Identifiers and the target are never model inputs.
    for name in ("customer_id", "name", "email", "phone", "date_of_birth", "postcode", "churned"):
        assert name not in serving_names(churn_contract)


def test_generalized_name_clash_is_rejected() -> None:
    contract = contract_from_dict(
        {
            "target": "y",
            "objective": "regression",
            "columns": [
                {"name": "zip", "dtype": "str", "role": "quasi_identifier", "generalize": "prefix", "width": 3},
                {"name": "zip_prefix", "dtype": "str", "role": "feature"},
                {"name": "y", "dtype": "float", "role": "target"},
            ],
        }
    )
    with pytest.raises(ValueError, match="zip_prefix"):
        serving_columns(contract)


@pytest.mark.parametrize(
    ("dob", "band"),
    [
        ("1996-01-01", "30-39"),  # 30th birthday on the reference date itself
        ("1996-01-02", "20-29"),  # one day short of 30
        ("2010-06-30", "10-19"),
        ("1930-05-05", "90+"),
        ("2030-01-01", "0-9"),  # born after the reference date: clipped, not negative
    ],
)
def test_age_band_at_reference_date(dob: str, band: str) -> None:
    out = age_band(pd.Series(pd.to_datetime([dob])), "2026-01-01")
    assert out.iloc[0] == band


def test_age_band_keeps_missing() -> None:
    out = age_band(pd.Series(pd.to_datetime(["1980-01-01", None])), "2026-01-01")
    assert out.iloc[0] == "40-49"
    assert out.iloc[1] is None


def test_prefix_and_year() -> None:
    assert prefix(pd.Series([" 02139", "sw1a 1aa", None]), 3).tolist() == ["021", "SW1", None]
    assert year(pd.Series(pd.to_datetime(["2019-12-31", None]))).tolist() == [2019, pd.NA]


def test_hmac_tokens_match_the_standard_library() -> None:
    tok = HmacTokenizer(KEY)
    for value in ("C000000001", "ü-unicode", ""):
        expected = hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()[:32]
        assert tok.token(value) == expected
    long_key = b"k" * 100  # longer than the SHA-256 block: hashed first, as RFC 2104 says
    assert HmacTokenizer(long_key).token("x") == hmac.new(long_key, b"x", hashlib.sha256).hexdigest()[:32]


def test_tokens_stable_per_key_and_different_across_keys() -> None:
    ids = [f"C{i:09d}" for i in range(50)]
    a1 = HmacTokenizer(KEY).tokens(ids)
    a2 = HmacTokenizer(KEY).tokens(ids)
    b = HmacTokenizer(b"another-key-0123456789-0123456789").tokens(ids)
    assert a1 == a2
    assert len(set(a1)) == len(ids)
    assert not set(a1) & set(b)
    assert HmacTokenizer(KEY).tokens(["x", None]) == [HmacTokenizer(KEY).token("x"), None]


@pytest.mark.parametrize("length", [0, 5, 16, 31])
def test_keys_shorter_than_32_bytes_are_refused(length: int) -> None:
    with pytest.raises(ValueError, match=f"at least 32 bytes, got {length}"):
        HmacTokenizer(b"k" * length)


def test_a_32_byte_key_is_accepted() -> None:
    key = b"k" * 32
    assert HmacTokenizer(key).token("x") == hmac.new(key, b"x", hashlib.sha256).hexdigest()[:32]


def test_pseudonymize_drops_identifiers_and_generalizes(churn_raw: pd.DataFrame, churn_contract) -> None:
    out = pseudonymize(churn_raw, churn_contract, KEY)
    assert list(out.columns) == ["customer_id", *serving_names(churn_contract), "churned"]
    for col in ("name", "email", "phone", "date_of_birth", "postcode", "signup_date"):
        assert col not in out.columns
    assert out["customer_id"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert not set(out["customer_id"]) & set(churn_raw["customer_id"])
    assert set(out["date_of_birth_age_band"]) <= {f"{b}-{b + 9}" for b in range(0, 90, 10)} | {"90+"}
    assert (out["postcode_prefix"].str.len() == 3).all()
    assert out["signup_date_year"].between(2010, 2026).all()


def test_pseudonymize_requires_key_for_id_columns(churn_raw: pd.DataFrame, churn_contract) -> None:
    with pytest.raises(ValueError, match="PII key"):
        pseudonymize(churn_raw, churn_contract, None)


def test_encode_typed_and_text_frames_identically(churn_raw: pd.DataFrame, churn_contract) -> None:
    curated = pseudonymize(churn_raw, churn_contract, KEY)
    typed = encode(curated, churn_contract)
    as_text = curated[serving_names(churn_contract)].astype(object).map(lambda v: None if pd.isna(v) else str(v))
    assert typed.shape == (len(curated), len(serving_names(churn_contract)))
    assert typed.dtype == np.float32
    np.testing.assert_array_equal(typed, encode(as_text, churn_contract))


def test_encode_categories_and_unknowns(churn_contract) -> None:
    frame = pd.DataFrame({name: [None, None, None] for name in serving_names(churn_contract)}, dtype=object)
    frame["contract_type"] = ["month_to_month", "two_year", "weekly"]
    frame["date_of_birth_age_band"] = ["30-39", "90+", None]
    frame["paperless_billing"] = ["true", "0", None]
    frame["postcode_prefix"] = ["941", "941", "100"]
    m = encode(frame, churn_contract)
    col = {n: i for i, n in enumerate(serving_names(churn_contract))}
    np.testing.assert_array_equal(m[:, col["contract_type"]], [0, 2, np.nan])  # unknown -> missing
    np.testing.assert_array_equal(m[:, col["date_of_birth_age_band"]], [30, 90, np.nan])
    np.testing.assert_array_equal(m[:, col["paperless_billing"]], [1, 0, np.nan])
    buckets = m[:, col["postcode_prefix"]]
    assert buckets[0] == buckets[1] == stable_bucket("941")
    assert 0 <= buckets[2] < HASH_BUCKETS
    assert np.isnan(m[:, col["tenure_months"]]).all()


@pytest.mark.parametrize(
    ("column", "value"),
    [("tenure_months", "twelve"), ("paperless_billing", "maybe"), ("date_of_birth_age_band", "thirty")],
)
def test_encode_rejects_unreadable_values(churn_contract, column: str, value: str) -> None:
    frame = pd.DataFrame({name: [None] for name in serving_names(churn_contract)}, dtype=object)
    frame[column] = [value]
    with pytest.raises(ValueError, match=column):
        encode(frame, churn_contract)


def test_stable_bucket_is_a_fixed_function() -> None:
    # Pinned values: a change here silently breaks every deployed model (bump ENCODING_VERSION instead).
    assert [stable_bucket(v) for v in ("941", "021", "")] == [
        int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little") % HASH_BUCKETS
        for v in ("941", "021", "")
    ]


def test_class_labels_and_encode_labels() -> None:
    wine = load_contract(CONTRACTS / "wine.json")
    labels = class_labels(wine)
    assert labels == ["class_0", "class_1", "class_2"]
    np.testing.assert_array_equal(encode_labels(pd.Series(["class_2", "class_0"]), labels), [2, 0])
    with pytest.raises(ValueError, match="class_9"):
        encode_labels(pd.Series(["class_9"]), labels)
    churn = load_contract(CONTRACTS / "churn.json")
    assert class_labels(churn) == [0, 1]
    assert class_labels(load_contract(CONTRACTS / "diabetes.json")) == []
