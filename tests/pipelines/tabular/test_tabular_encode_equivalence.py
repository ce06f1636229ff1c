"""The fast ``features.encode`` gives byte-identical matrices to the implementation it replaced.

``_reference_encode`` below is a frozen copy of ``encode`` as it was before the request-path
speed-up (issue 16): every value went through pandas Series. Training and serving share
``encode``, so the new code must agree bit for bit on typed (curated) frames, on text (request)
frames and on the awkward values a request can carry, and raise the same errors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from contract import load_contract
from features import _encode_arrow, encode, pseudonymize, serving_columns, serving_names
from tabular_helpers import CONTRACTS, FIXTURES, PII_KEY

_AGE_BAND_RE = re.compile(r"^\s*(\d+)\s*(?:-\s*\d+|\+)\s*$")
_TRUE = frozenset({"true", "1", "1.0", "t", "yes"})
_FALSE = frozenset({"false", "0", "0.0", "f", "no"})
NAMES = ("churn", "diabetes", "diagnostics", "wine")


@pytest.fixture(autouse=True, params=["serial", "threads"])
def _columns_on(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test runs twice: columns one after another, and on a thread each (a large frame's path,
    forced on every frame), which must give the same bits and raise the first failing column's error."""
    import features

    if request.param == "threads":
        monkeypatch.setattr(features, "PARALLEL_ENCODE_ROWS", 1)
        monkeypatch.setattr(features.os, "cpu_count", lambda: 2)  # threads even on a one-core runner
        started: list[int] = []
        real = features.ThreadPoolExecutor

        def counting(*args: Any, **kwargs: Any) -> Any:
            started.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(features, "ThreadPoolExecutor", counting)
        yield request.param
        assert started, "the threaded path was not taken"
        return
    yield request.param


def _reference_encode(frame: pd.DataFrame, contract: Any) -> np.ndarray:
    cols = serving_columns(contract)
    out = np.empty((len(frame), len(cols)), dtype=np.float32)
    for j, sc in enumerate(cols):
        out[:, j] = _reference_column(frame[sc.name], sc, contract.reference_date)
    return out


def _reference_column(values: pd.Series, sc: Any, reference_date: str) -> np.ndarray:
    present = values.notna().to_numpy()
    if sc.kind == "numeric":
        if pd.api.types.is_bool_dtype(values.dtype):
            num = np.full(len(values), np.nan)
        else:
            arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            num = np.where(np.isinf(arr), np.nan, np.asarray(arr, dtype="float64"))
    elif sc.kind == "bool":
        num = _uniques(values, _reference_bool)
    elif sc.kind == "date":
        dates = pd.to_datetime(values, errors="coerce", format="ISO8601")
        num = (dates - pd.Timestamp(reference_date)).dt.days.to_numpy(dtype="float64", na_value=np.nan)
    elif sc.kind == "age_band":
        num = _uniques(values, lambda t: float(m.group(1)) if (m := _AGE_BAND_RE.match(t)) else np.nan)
    elif sc.kind == "category":
        index = {c: float(i) for i, c in enumerate(sc.categories)}
        return _uniques(values, lambda u: index.get(u, np.nan))
    else:
        return _uniques(
            values, lambda u: float(int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8).digest(), "little") % 256)
        )
    bad = present & np.isnan(num)
    if bad.any():
        raise ValueError(f"column {sc.name!r}: {int(bad.sum())} value(s) cannot be read as {sc.kind}")
    return num


def _reference_bool(text: str) -> float:
    low = text.strip().lower()
    return 1.0 if low in _TRUE else 0.0 if low in _FALSE else np.nan


def _uniques(values: pd.Series, fn: Any) -> np.ndarray:
    codes, uniques = pd.factorize(values)
    mapped = np.array([fn(str(u)) for u in uniques], dtype="float64")
    return np.where(codes < 0, np.nan, mapped[np.maximum(codes, 0)] if len(mapped) else np.nan)


def _same(frame: pd.DataFrame, contract: Any, reference: pd.DataFrame | None = None) -> None:
    """``encode(frame)`` is the reference encoding of ``reference`` (default: the same frame)."""
    try:
        expected = _reference_encode(frame if reference is None else reference, contract)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            encode(frame, contract)
        return
    got = encode(frame, contract)
    assert got.dtype == expected.dtype == np.float32
    assert got.tobytes() == expected.tobytes()  # bit for bit, NaNs included


def _as_text(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    return frame[names].astype(object).map(lambda v: None if pd.isna(v) else str(v))


@pytest.mark.parametrize("name", NAMES)
def test_typed_and_text_frames_of_each_contract_match_the_reference(name: str) -> None:
    contract = load_contract(CONTRACTS / f"{name}.json")
    raw = pd.read_csv(FIXTURES / f"{name}.csv", dtype={"postcode": str})
    curated = pseudonymize(raw, contract, PII_KEY.encode())
    names = serving_names(contract)
    _same(curated, contract)
    _same(_as_text(curated, names), contract)


EDGE = [
    None,
    np.nan,
    pd.NA,
    "",
    " ",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e400",
    " 12 ",
    "12.50",
    "+3",
    "1_0",
    "0x10",
    "007",
    "1e3",
    "-0",
    "true",
    "False",
    "yes",
    "t",
    "maybe",
    "30-39",
    "90+",
    " 40 - 49 ",
    "thirty",
    "2024-01-05",
    "2024-13-01",
    "unseen-category",
    "941",
    "941 ",
    "Ä",
    "1.0",
    "0",
]


@pytest.mark.parametrize("name", NAMES)
def test_each_column_on_edge_values_matches_the_reference(name: str) -> None:
    """Every edge value in every serving column: same codes, same NaN (unseen/missing), same errors."""
    contract = load_contract(CONTRACTS / f"{name}.json")
    names = serving_names(contract)
    base = {n: [None] * len(EDGE) for n in names}
    for col in names:
        frame = pd.DataFrame(base, dtype=object)
        frame[col] = pd.Series(EDGE, dtype=object)
        _same(frame, contract)
    for value in EDGE:  # one value in every column: a readable value must not hide behind a bad one
        _same(pd.DataFrame({n: pd.Series([value, None], dtype=object) for n in names}), contract)


def test_numeric_strings_and_typed_columns(churn_contract: Any) -> None:
    names = serving_names(churn_contract)
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame({c: [None] * n for c in names}, dtype=object)
    numeric = [sc.name for sc in serving_columns(churn_contract) if sc.kind == "numeric"]
    for c in numeric:
        values = rng.normal(0, 1e3, n)
        text = np.array([repr(float(v)) if i % 7 else None for i, v in enumerate(values)], dtype=object)
        frame[c] = text
    _same(frame, churn_contract)
    typed = frame.copy()
    for c in numeric:
        typed[c] = pd.to_numeric(frame[c])
    typed[numeric[0]] = typed[numeric[0]].round().astype("Int64")
    _same(typed, churn_contract)
    boolean = typed.copy()
    boolean[numeric[0]] = np.ones(n, dtype=bool)  # a bool where a number is expected: the same error
    _same(boolean, churn_contract)


def _as_arrow(text: pd.DataFrame) -> pd.DataFrame:
    """A frame of text (``_as_text``; NaN in all-missing columns) as the pyarrow parser hands it over."""
    import pyarrow as pa

    return pd.DataFrame(
        {
            c: pd.arrays.ArrowExtensionArray(pa.array(list(text[c]), type=pa.string(), from_pandas=True))
            for c in text.columns
        },
        index=text.index,
    )


def _same_text(frame: pd.DataFrame, contract: Any) -> None:
    """The Arrow-string copy of a frame's text encodes as the reference encodes the text as objects."""
    text = _as_text(frame, list(frame.columns))
    _same(_as_arrow(text), contract, reference=text)


@pytest.mark.parametrize("name", NAMES)
def test_arrow_string_frames_match_the_reference(name: str) -> None:
    """A CSV batch reaches encode as Arrow strings (encoded in Arrow's kernels): the same matrix, bit for
    bit, as the reference on the same text, and the same errors, for the fixtures and every edge value."""
    contract = load_contract(CONTRACTS / f"{name}.json")
    raw = pd.read_csv(FIXTURES / f"{name}.csv", dtype={"postcode": str})
    names = serving_names(contract)
    text = _as_text(pseudonymize(raw, contract, PII_KEY.encode()), names)
    _same_text(text, contract)
    arrow = _as_arrow(text)
    fast = [sc.name for sc in serving_columns(contract) if _encode_arrow(arrow[sc.name], sc) is not None]
    assert fast == [sc.name for sc in serving_columns(contract) if sc.kind != "date"]  # the Arrow path ran
    base = {n: [None] * len(EDGE) for n in names}
    for col in names:
        frame = pd.DataFrame(base, dtype=object)
        frame[col] = pd.Series(EDGE, dtype=object)
        _same_text(frame, contract)
    for value in EDGE:
        _same_text(pd.DataFrame({n: pd.Series([value, None], dtype=object) for n in names}), contract)


def test_arrow_numbers_match_the_reference_on_awkward_text(churn_contract: Any) -> None:
    """Signed zeros (pandas reads an integer "-0" as +0), integers past 2**53 and 2**64, 17-digit
    decimals, exponents at the float32 edges: Arrow's cast or the fallback, never a different bit."""
    rng = np.random.default_rng(11)
    awkward = ["-0", "-0.0", "0", "0.0", "9007199254740993", "18446744073709551617", "3.4028235e38", "1e-46"]
    awkward += [repr(float(v)) for v in rng.normal(0, 1e6, 500)] + [f"{v:.17g}" for v in rng.normal(0, 1, 500)]
    names = serving_names(churn_contract)
    numeric = [sc.name for sc in serving_columns(churn_contract) if sc.kind == "numeric"]
    frame = pd.DataFrame({c: [None] * len(awkward) for c in names}, dtype=object)
    frame[numeric[0]] = awkward
    _same(_as_arrow(frame), churn_contract)
    for zero in ("-0", "-0.0"):  # alone in a column too
        frame[numeric[0]] = [zero] + ["1"] * (len(awkward) - 1)
        _same(_as_arrow(frame), churn_contract)
