"""The feature transformation of the ``tabular`` template, shared by every step and by serving.

Three stages, all driven by the data contract and nothing learned from data, so that a model artifact
carries everything it needs (the contract) and serving applies exactly the training transform:

1. :func:`pseudonymize` (preprocess): raw validated batch -> *curated* frame. Direct identifiers are
   dropped, ``id`` columns become keyed HMAC-SHA256 tokens, quasi-identifiers are generalized.
2. The curated feature columns (:func:`serving_columns`) are what is written to the curated zone, what
   the baseline statistics describe, and what an inference request carries.
3. :func:`encode` (train, evaluate, inference): curated/request frame -> float32 matrix for XGBoost, one
   model feature per serving column. Categoricals become codes of XGBoost categorical features
   (fixed categories from the contract's ``allowed``; open vocabularies such as a postcode prefix are
   hashed into :data:`HASH_BUCKETS` stable buckets), age bands become their lower bound, dates become
   days since ``reference_date``.

Imports only the standard library, numpy and pandas (plus the sibling ``contract`` module) so that the
inference container needs nothing else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from contract import ColumnSpec, DataContract

#: Bump when :func:`encode` changes meaning; stored in model metadata and checked when a model loads.
ENCODING_VERSION = 1
#: Buckets for categorical columns without a fixed vocabulary (``str`` without ``allowed``, prefixes).
HASH_BUCKETS = 256
#: Token length in hex characters (128 bits of the HMAC-SHA256 output).
TOKEN_HEX_CHARS = 32
#: Age bands are ten years wide; everything from 90 up is one band (small counts re-identify).
AGE_BAND_WIDTH = 10
AGE_BAND_TOP = 90

XGB_OBJECTIVES: dict[str, str] = {
    "binary": "binary:logistic",
    "multiclass": "multi:softprob",
    "regression": "reg:squarederror",
}

Kind = Literal["numeric", "bool", "date", "category", "hashed", "age_band"]
_CATEGORICAL_KINDS = ("category", "hashed")
_AGE_BAND_RE = re.compile(r"^\s*(\d+)\s*(?:-\s*\d+|\+)\s*$")
_TRUE = frozenset({"true", "1", "1.0", "t", "yes"})
_FALSE = frozenset({"false", "0", "0.0", "f", "no"})


@dataclass(frozen=True)
class ServingColumn:
    """One curated feature column: its name in curated data and in requests, and how it is encoded."""

    name: str
    source: str
    kind: Kind
    categories: tuple[str, ...] = ()

    @property
    def xgb_type(self) -> str:
        """XGBoost feature type: ``c`` (categorical codes) or ``q`` (quantitative)."""
        return "c" if self.kind in _CATEGORICAL_KINDS else "q"

    @property
    def is_categorical(self) -> bool:
        """Whether baseline statistics treat the column as categories (vs. a numeric distribution)."""
        return self.kind in ("category", "hashed", "bool", "age_band")


def serving_columns(contract: DataContract) -> list[ServingColumn]:
    """The curated feature columns, in contract order (features and generalized quasi-identifiers)."""
    out: list[ServingColumn] = []
    for col in contract.columns:
        if col.role == "feature" or (col.role == "protected" and contract.protected_as_features):
            out.append(ServingColumn(col.name, col.name, _feature_kind(col), _categories(col)))
        elif col.role == "quasi_identifier":
            if col.generalize == "age_band":
                out.append(ServingColumn(f"{col.name}_age_band", col.name, "age_band"))
            elif col.generalize == "year":
                out.append(ServingColumn(f"{col.name}_year", col.name, "numeric"))
            else:
                out.append(ServingColumn(f"{col.name}_prefix", col.name, "hashed"))
    names = [c.name for c in out]
    clashes = sorted({n for n in names if names.count(n) > 1} | (set(names) & _other_names(contract)))
    if clashes:
        raise ValueError(f"generalized column names clash with other columns: {', '.join(clashes)}")
    return out


def serving_names(contract: DataContract) -> list[str]:
    """Names of :func:`serving_columns` (the CSV column order of an inference request)."""
    return [c.name for c in serving_columns(contract)]


def _other_names(contract: DataContract) -> set[str]:
    return set(contract.names("id", "target", "direct_identifier", "ignore")) | set(group_columns(contract))


def group_columns(contract: DataContract) -> list[str]:
    """``protected`` columns carried in the curated splits only to measure fairness (not model features)."""
    return [] if contract.protected_as_features else contract.names("protected")


def _feature_kind(col: ColumnSpec) -> Kind:
    if col.dtype in ("int", "float"):
        return "numeric"  # an int with ``allowed`` stays ordered (e.g. number of products)
    if col.dtype == "bool":
        return "bool"
    if col.dtype == "date":
        return "date"
    return "category" if col.allowed else "hashed"


def _categories(col: ColumnSpec) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(a) for a in col.allowed)) if col.dtype == "str" and col.allowed else ()


def typed_allowed(col: ColumnSpec) -> list[Any]:
    """The column's ``allowed`` values converted to its dtype (contract JSON may hold them as strings)."""
    if col.allowed is None:
        return []
    if col.dtype == "int":
        return [int(a) for a in col.allowed]
    if col.dtype == "bool":
        return [parse_bool(a) for a in col.allowed]
    return [str(a) for a in col.allowed]


def parse_bool(value: Any) -> bool:
    """``True``/``False`` from a bool, 0/1 or a true/false-like string; ValueError otherwise."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


# --- pseudonymization (preprocess) -------------------------------------------------------------------


#: Shortest PII key accepted: 256 bits, the HMAC-SHA256 output size (RFC 2104 §3 recommends at least L bytes).
MIN_PII_KEY_BYTES = 32


class HmacTokenizer:
    """Keyed HMAC-SHA256 tokens (RFC 2104) with the key pads hashed once.

    Equivalent to ``hmac.new(key, value, sha256).hexdigest()[:TOKEN_HEX_CHARS]`` but about twice as
    fast per value, which matters at millions of ids per batch.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_PII_KEY_BYTES:
            raise ValueError(f"the PII key must be at least {MIN_PII_KEY_BYTES} bytes, got {len(key)}")
        if len(key) > 64:  # SHA-256 block size: longer keys are hashed first (RFC 2104)
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def token(self, value: str) -> str:
        """The token of one value."""
        inner = self._inner.copy()
        inner.update(value.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:TOKEN_HEX_CHARS]

    def tokens(self, values: Iterable[Any]) -> list[str | None]:
        """Tokens of ``values``; ``None`` (only ``None``: normalize NaN/NA first) stays ``None``."""
        inner_copy, outer_copy, n = self._inner.copy, self._outer.copy, TOKEN_HEX_CHARS
        out: list[str | None] = []
        append = out.append
        for v in values:  # the hot loop of preprocessing: locals only, no method lookups
            if v is None:
                append(None)
                continue
            inner = inner_copy()
            inner.update(str(v).encode("utf-8"))
            outer = outer_copy()
            outer.update(inner.digest())
            append(outer.hexdigest()[:n])
        return out


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def age_band(dates: pd.Series, reference_date: str) -> pd.Series:
    """Ten-year age band (``"30-39"``, ..., ``"90+"``) at ``reference_date`` of a date-of-birth column."""
    ref = pd.Timestamp(reference_date)
    d = pd.to_datetime(dates)
    before_birthday = (d.dt.month > ref.month) | ((d.dt.month == ref.month) & (d.dt.day > ref.day))
    age = ref.year - d.dt.year - before_birthday.astype("float64")
    band = (age.clip(lower=0, upper=AGE_BAND_TOP) // AGE_BAND_WIDTH).to_numpy(dtype="float64")
    labels = np.array(
        [f"{b}-{b + AGE_BAND_WIDTH - 1}" for b in range(0, AGE_BAND_TOP, AGE_BAND_WIDTH)] + [f"{AGE_BAND_TOP}+"],
        dtype=object,
    )
    out = np.full(len(band), None, dtype=object)
    ok = ~np.isnan(band)
    out[ok] = labels[band[ok].astype(np.int64)]
    return pd.Series(out, index=dates.index, dtype=object)


def prefix(values: pd.Series, width: int) -> pd.Series:
    """The first ``width`` characters, upper-cased and stripped (e.g. a 3-digit ZIP prefix)."""
    text = values.astype(str).str.strip().str.upper().str[:width]
    return text.astype(object).where(values.notna(), None)


def year(dates: pd.Series) -> pd.Series:
    """Calendar year of a date column (nullable integers)."""
    return pd.to_datetime(dates).dt.year.astype("Int64")


def generalize(values: pd.Series, col: ColumnSpec, reference_date: str) -> pd.Series:
    """Apply ``col.generalize`` to a validated quasi-identifier column."""
    if col.generalize == "age_band":
        return age_band(values, reference_date)
    if col.generalize == "year":
        return year(values)
    if col.generalize == "prefix" and col.width:
        return prefix(values, col.width)
    raise ValueError(f"column {col.name!r} has no usable generalization rule")


def pseudonymize(frame: pd.DataFrame, contract: DataContract, key: bytes | None) -> pd.DataFrame:
    """Raw validated batch -> curated frame: id tokens, serving columns, target (in that order).

    Direct identifiers and ``ignore`` columns are dropped; ``protected`` columns that are not features are
    kept (before the target) for the evaluation's per-group metrics; ``key`` is needed only if the contract
    has ``id`` columns.
    """
    out: dict[str, pd.Series] = {}
    ids = contract.names("id")
    if ids:
        if key is None:
            raise ValueError("a PII key is required to tokenize id columns: " + ", ".join(ids))
        tokenizer = HmacTokenizer(key)
        for name in ids:
            values = frame[name].astype(object).where(frame[name].notna(), None).to_numpy()
            out[name] = pd.Series(tokenizer.tokens(values), index=frame.index, dtype=object)
    for sc in serving_columns(contract):
        spec = contract.column(sc.source)
        if spec.role == "quasi_identifier":
            out[sc.name] = generalize(frame[sc.source], spec, contract.reference_date)
        else:
            out[sc.name] = frame[sc.source]
    for name in group_columns(contract):
        out[name] = frame[name]
    out[contract.target] = frame[contract.target]
    return pd.DataFrame(out, index=frame.index)


# --- encoding (train, evaluate, inference) -----------------------------------------------------------


def feature_types(contract: DataContract) -> list[str]:
    """XGBoost ``feature_types`` of the encoded matrix, in serving-column order."""
    return [c.xgb_type for c in serving_columns(contract)]


def encode(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """Curated or request frame -> float32 matrix (rows x serving columns); NaN marks missing.

    Accepts typed columns (curated parquet) and strings (a parsed request) alike, so training and
    serving share this one code path. Raises ValueError naming the column when a value cannot be
    read as its kind (e.g. text in a numeric column); an unknown category is *not* an error but
    missing, because drift monitoring reports unseen categories.
    """
    cols = serving_columns(contract)
    missing = [c.name for c in cols if c.name not in frame.columns]
    if missing:
        raise ValueError(f"missing feature columns: {', '.join(missing)}")
    out = np.empty((len(frame), len(cols)), dtype=np.float32)
    for j, sc in enumerate(cols):
        out[:, j] = encode_column(frame[sc.name], sc, contract.reference_date)
    return out


def encode_column(values: pd.Series, sc: ServingColumn, reference_date: str) -> np.ndarray:
    """Encode one serving column as float64 (see :func:`encode`)."""
    present = values.notna().to_numpy()
    if sc.kind == "numeric":
        num = _to_float(values)
    elif sc.kind == "bool":
        num = _via_uniques(values, _bool_or_nan)
    elif sc.kind == "date":
        dates = pd.to_datetime(values, errors="coerce", format="ISO8601")
        num = (dates - pd.Timestamp(reference_date)).dt.days.to_numpy(dtype="float64", na_value=np.nan)
    elif sc.kind == "age_band":
        num = _via_uniques(values, _band_lower_or_nan)
    elif sc.kind == "category":
        index = {c: float(i) for i, c in enumerate(sc.categories)}
        return _via_uniques(values, lambda u: index.get(u, np.nan))  # unknown: missing, not an error
    else:
        return _via_uniques(values, lambda u: float(stable_bucket(u)))
    bad = present & np.isnan(num)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        example = str(values.iloc[first])[:40]
        raise ValueError(
            f"column {sc.name!r}: {int(bad.sum())} value(s) cannot be read as {sc.kind} "
            f"(first at row {first}: {example!r})"
        )
    return num


def _to_float(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.full(len(values), np.nan)  # a boolean where a number is expected is a type error
    num = pd.to_numeric(values, errors="coerce")
    arr = np.asarray(num.to_numpy(dtype="float64", na_value=np.nan), dtype="float64")
    return np.where(np.isinf(arr), np.nan, arr)


def _bool_or_nan(text: str) -> float:
    low = text.strip().lower()
    return 1.0 if low in _TRUE else 0.0 if low in _FALSE else np.nan


def _band_lower_or_nan(text: str) -> float:
    match = _AGE_BAND_RE.match(text)
    return float(match.group(1)) if match else np.nan


def _via_uniques(values: pd.Series, fn: Any) -> np.ndarray:
    """Apply ``fn`` (text -> float) once per distinct value; missing stays NaN.

    Categorical columns have few distinct values, so this is one factorize plus a tiny loop.
    """
    codes, uniques = pd.factorize(values)
    mapped = np.array([fn(str(u)) for u in uniques], dtype="float64")
    return np.where(codes < 0, np.nan, mapped[np.maximum(codes, 0)] if len(mapped) else np.nan)


def stable_bucket(value: str) -> int:
    """Bucket of a category without a fixed vocabulary; stable across processes and versions."""
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % HASH_BUCKETS


# --- target ------------------------------------------------------------------------------------------


def class_labels(contract: DataContract, observed: Iterable[Any] = ()) -> list[Any]:
    """Class labels in model order: the target's ``allowed`` if given, else the sorted observed labels.

    For ``binary`` the second label is the positive class (probability reported by the model): the
    contract's ``positive_class`` when set, else the second ``allowed`` value (else the larger observed one).
    """
    if contract.objective == "regression":
        return []
    spec = contract.column(contract.target)
    labels = list(dict.fromkeys(typed_allowed(spec))) or sorted({_py(v) for v in observed if not _is_missing(v)})
    positive = getattr(contract, "positive_class", None)
    if contract.objective == "binary" and positive is not None and spec.allowed:
        typed = typed_allowed(spec)[[str(a) for a in spec.allowed].index(str(positive))]
        labels = [v for v in labels if v != typed] + [typed]
    if contract.objective == "binary" and len(labels) != 2:
        raise ValueError(f"binary objective needs exactly 2 class labels, got {labels!r}")
    if contract.objective == "multiclass" and len(labels) < 2:
        raise ValueError(f"multiclass objective needs at least 2 class labels, got {labels!r}")
    return labels


def encode_labels(values: pd.Series, labels: Sequence[Any]) -> np.ndarray:
    """Target values -> float class indices (regression: ``labels`` empty, values as float)."""
    if not labels:
        return _to_float(values)
    codes = pd.Index(list(labels)).get_indexer(pd.Series(values).astype(object))
    bad = codes < 0
    if bad.any():
        unknown = sorted({repr(_py(v)) for v in pd.Series(values)[bad]})[:5]
        raise ValueError(f"target has labels outside {list(labels)!r}: {', '.join(unknown)}")
    return codes.astype("float64")


def _py(value: Any) -> Any:
    """numpy scalar -> Python scalar so labels compare and serialize as JSON."""
    return value.item() if isinstance(value, np.generic) else value
