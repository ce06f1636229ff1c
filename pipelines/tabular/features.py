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

import functools
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from contract import ColumnSpec, DataContract

#: Bump when :func:`encode` changes meaning; stored in model metadata and checked when a model loads.
ENCODING_VERSION = 1
#: Buckets for categorical columns without a fixed vocabulary (``str`` without ``allowed``, prefixes).
HASH_BUCKETS = 256
#: Frames from this many rows on are encoded a column per core (:func:`encode`); below, threads cost more
#: than they save.
PARALLEL_ENCODE_ROWS = 20_000
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


#: The token construction written by :func:`pseudonymize` (recorded with curated data and the model):
#: 1 = HMAC-SHA256 truncated to 128 bits (:class:`HmacTokenizer`), 2 = AES-256-CMAC (:class:`CmacTokenizer`).
TOKEN_VERSION = 2
TOKEN_VERSIONS = (1, 2)
#: Domain-separation label of the v2 key derivation (the PII key itself never keys AES directly).
_CMAC_KEY_LABEL = b"flywheel/token/v2/aes-256-cmac"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
#: Byte -> its two hex digits as one little-endian uint16 (so a tag's hex is one table look-up per byte).
_HEX_PAIRS = (_HEX[np.arange(256) >> 4].astype("<u2") | (_HEX[np.arange(256) & 0x0F].astype("<u2") << 8)).astype("<u2")


class CmacTokenizer:
    """Keyed tokens v2: AES-256-CMAC (NIST SP 800-38B) of the id's UTF-8 text, all 128 bits, as hex.

    Soundness: CMAC is a PRF on messages of any length (Iwata-Kurosawa's OMAC proof; NIST SP 800-38B)
    under AES as a PRP, so a token reveals nothing about the id to anyone without the key, two ids get
    equal tokens only with probability ~2^-128, and the same (key, id) always gives the same token
    (deterministic, so lineage and erasure can recompute a subject's token). The AES key is
    ``HMAC-SHA256(pii_key, label)``: the PII key (32+ bytes) keys no other primitive directly, and the
    v1 and v2 tokens of one id are unrelated. What makes it fast: the CBC chain of CMAC runs over a whole
    buffer of ids at once, one ECB call per 16-byte block position (ids are short: usually one call),
    instead of two SHA-256 objects per id in a Python loop. ECB here is only the raw block cipher of
    CMAC, never a way to encrypt data. Verified against ``cryptography``'s own CMAC in the tests.
    """

    version = 2

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_PII_KEY_BYTES:
            raise ValueError(f"the PII key must be at least {MIN_PII_KEY_BYTES} bytes, got {len(key)}")
        # Imported here: the inference container (which never tokenizes) needs only numpy and pandas.
        try:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        except ImportError as exc:
            raise ImportError(
                "token version 2 needs the 'cryptography' package (AES); the SageMaker scikit-learn image "
                "ships it, elsewhere run `pip install cryptography`"
            ) from exc

        aes_key = hmac.new(key, _CMAC_KEY_LABEL, hashlib.sha256).digest()
        self._encrypt = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor().update  # noqa: S305 (block cipher of CMAC)
        # Subkeys K1, K2 (SP 800-38B §6.1): L = AES(0^128), doubled in GF(2^128).
        k1 = _gf_double(self._encrypt(bytes(16)))
        self._k1 = np.frombuffer(k1, dtype=np.uint8)
        self._k2 = np.frombuffer(_gf_double(k1), dtype=np.uint8)

    def token(self, value: Any) -> str:
        """The token of one value (its text: ``str(value)``)."""
        data = np.frombuffer(str(value).encode("utf-8"), dtype=np.uint8)
        return bytes(self._hex(self._cmac(data, np.array([0, len(data)], dtype=np.int64)))[0]).decode("ascii")

    def tokens(self, values: Iterable[Any]) -> list[str | None]:
        """Tokens of ``values`` (text: ``str(value)``); ``None`` stays ``None`` (normalize NaN/NA first)."""
        items = list(values)
        texts = [None if v is None else str(v).encode("utf-8") for v in items]
        lengths = np.array([0 if t is None else len(t) for t in texts], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        data = np.frombuffer(b"".join(t for t in texts if t is not None), dtype=np.uint8)
        hexed = self._hex(self._cmac(data, offsets)).view("S32").ravel()
        return [None if t is None else h.decode("ascii") for t, h in zip(texts, hexed, strict=True)]

    def tokens_arrow(self, array: Any) -> Any:
        """Tokens of an Arrow array (strings; other types by their Arrow text cast) as an Arrow string array.

        Nulls stay null. The id bytes are read from the Arrow buffers and the tokens written into one
        (no Python object per row).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if not pa.types.is_large_string(array.type):
            array = pc.cast(array if pa.types.is_string(array.type) else pc.cast(array, pa.string()), pa.large_string())
        n = len(array)
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + n + 1]
        data_buf = array.buffers()[2]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
        hexed = self._hex(self._cmac(data, offsets))
        out_offsets = np.arange(0, (n + 1) * TOKEN_HEX_CHARS, TOKEN_HEX_CHARS, dtype=np.int32)
        validity = array.buffers()[0] if array.null_count else None
        if validity is not None and array.offset:
            validity = pc.is_valid(array).buffers()[1]
        return pa.Array.from_buffers(
            pa.string(), n, [validity, pa.py_buffer(out_offsets), pa.py_buffer(hexed.tobytes())], array.null_count
        )

    def _cmac(self, data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """CMAC tags (n x 16 bytes) of the messages ``data[offsets[i] : offsets[i + 1]]``."""
        starts = offsets[:-1]
        lengths = np.diff(offsets)
        out = np.empty((len(lengths), 16), dtype=np.uint8)
        if not len(lengths):
            return out
        blocks = np.maximum(1, (lengths + 15) // 16)
        uniform = blocks.min() == blocks.max()
        for nb in blocks[:1] if uniform else np.unique(blocks):
            rows = None if uniform else np.flatnonzero(blocks == nb)
            length = lengths if rows is None else lengths[rows]
            start = starts if rows is None else starts[rows]
            width = int(nb) * 16
            msg = _pad_messages(data, start, length, width)
            complete = (length > 0) & (length % 16 == 0)
            partial = np.flatnonzero(~complete)
            msg[partial, length[partial]] = 0x80  # 10* padding of an incomplete last block
            msg[:, width - 16 :] ^= np.where(complete[:, None], self._k1, self._k2)
            y = np.zeros((len(length), 16), dtype=np.uint8)
            for b in range(int(nb)):
                y = np.frombuffer(self._encrypt((y ^ msg[:, b * 16 : (b + 1) * 16]).tobytes()), dtype=np.uint8)
                y = y.reshape(-1, 16)
            if rows is None:
                out[:] = y
            else:
                out[rows] = y
        return out

    @staticmethod
    def _hex(tags: np.ndarray) -> np.ndarray:
        """Lower-case hex of each 16-byte tag (n x 32 ASCII bytes)."""
        return _HEX_PAIRS[tags].view(np.uint8).reshape(len(tags), 2 * tags.shape[1])


def _pad_messages(data: np.ndarray, start: np.ndarray, length: np.ndarray, width: int) -> np.ndarray:
    """The messages as rows of ``width`` bytes, zero after each message's end."""
    n = len(length)
    if n and length.min() == length.max() and int(start[-1] - start[0]) == (n - 1) * int(length[0]):
        # Fixed-width ids stored back to back (the usual case): one reshape, no gather.
        size = int(length[0])
        msg = np.zeros((n, width), dtype=np.uint8)
        msg[:, :size] = data[int(start[0]) : int(start[0]) + n * size].reshape(n, size)
        return msg
    total = int(length.sum())
    row = np.repeat(np.arange(n, dtype=np.int64), length)
    col = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
    src = np.repeat(start, length) + col
    flat = np.zeros(n * width, dtype=np.uint8)
    flat[row * width + col] = data[src]
    return flat.reshape(n, width)


def _gf_double(block: bytes) -> bytes:
    """Multiplication by x in GF(2^128) (SP 800-38B subkey generation, R_128 = 0x87)."""
    value = int.from_bytes(block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(16, "big")


def tokenizer(key: bytes, version: int = TOKEN_VERSION) -> HmacTokenizer | CmacTokenizer:
    """The tokenizer of construction ``version`` (what the curated data's ``token_version`` says)."""
    if version == 1:
        return HmacTokenizer(key)
    if version == 2:
        return CmacTokenizer(key)
    raise ValueError(f"unknown token version {version!r}: this code implements {list(TOKEN_VERSIONS)}")


def token_for(key: bytes, value: Any, version: int = TOKEN_VERSION) -> str:
    """The token of one id under construction ``version`` (erasure and lineage look-ups)."""
    return tokenizer(key, version).token(value)


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


def pseudonymize(
    frame: pd.DataFrame,
    contract: DataContract,
    key: bytes | None,
    *,
    token_version: int = TOKEN_VERSION,
    tokens: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Raw validated batch -> curated frame: id tokens, serving columns, target (in that order).

    Direct identifiers and ``ignore`` columns are dropped; ``protected`` columns that are not features are
    kept (before the target) for the evaluation's per-group metrics; ``key`` is needed only if the contract
    has ``id`` columns. Ids become tokens of construction ``token_version`` (:func:`tokenizer`), unless
    ``tokens`` already holds them per id column (computed from the Arrow batch by the streaming step).
    """
    out: dict[str, Any] = {}
    ids = contract.names("id")
    if ids:
        tok = None
        if tokens is None or set(ids) - set(tokens):
            if key is None:
                raise ValueError("a PII key is required to tokenize id columns: " + ", ".join(ids))
            tok = tokenizer(key, token_version)
        for name in ids:
            if tokens is not None and name in tokens:
                out[name] = tokens[name]
                continue
            assert tok is not None
            values = frame[name].astype(object).where(frame[name].notna(), None).to_numpy()
            out[name] = pd.Series(tok.tokens(values), index=frame.index, dtype=object)
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


def encode(frame: pd.DataFrame, contract: DataContract, *, parallel: bool = True) -> np.ndarray:
    """Curated or request frame -> float32 matrix (rows x serving columns); NaN marks missing.

    Accepts typed columns (curated parquet) and strings (a parsed request) alike, so training and
    serving share this one code path. Raises ValueError naming the column when a value cannot be
    read as its kind (e.g. text in a numeric column); an unknown category is *not* an error but
    missing, because drift monitoring reports unseen categories.

    Request frames (``object`` columns) are encoded on their numpy arrays, not through pandas
    Series: the same pandas functions on the same values (so the same matrix, pinned by a test
    against the previous implementation), without the per-Series overhead that dominated a
    1,000-row request. ``parallel=False``: one thread, whatever the size (the caller spreads the work).
    """
    cols = serving_columns(contract)
    missing = [c.name for c in cols if c.name not in frame.columns]
    if missing:
        raise ValueError(f"missing feature columns: {', '.join(missing)}")
    # Column-major: each column is written in one contiguous pass (XGBoost reads either layout).
    out = np.empty((len(frame), len(cols)), dtype=np.float32, order="F")

    def column(sc: ServingColumn) -> np.ndarray:
        return encode_column(frame[sc.name], sc, contract.reference_date)

    workers = min(os.cpu_count() or 1, len(cols))
    if not parallel or len(frame) < PARALLEL_ENCODE_ROWS or workers < 2:
        encoded: Iterable[np.ndarray] = map(column, cols)
    else:
        # A large frame (a batch-transform payload, a training set): columns on all cores (the Arrow and
        # numpy kernels release the GIL). Results come back in column order either way, so the first
        # failing column raises.
        with ThreadPoolExecutor(workers, thread_name_prefix="flywheel-encode") as pool:
            encoded = list(pool.map(column, cols))
    for j, num in enumerate(encoded):
        out[:, j] = num
    return out


def encode_column(values: pd.Series, sc: ServingColumn, reference_date: str) -> np.ndarray:
    """Encode one serving column as float64 (see :func:`encode`)."""
    if isinstance(values.dtype, pd.ArrowDtype):  # a request parsed by pyarrow (inference._arrow_csv)
        fast = _encode_arrow(values, sc)
        if fast is not None:
            return fast
        # The values the fast path does not vouch for (and every error) take the object path below.
        values = pd.Series(values.to_numpy(dtype=object, na_value=None), index=values.index, dtype=object)
    # An object column (a parsed request, text frames) is handled as its ndarray: pandas' own
    # functions give the same result on it as on the Series, at about half the cost per call.
    raw: pd.Series | np.ndarray = values.to_numpy() if values.dtype == object else values
    present = pd.notna(raw) if isinstance(raw, np.ndarray) else values.notna().to_numpy()
    if sc.kind == "numeric":
        num = _to_float(raw)
    elif sc.kind == "date":
        dates = pd.to_datetime(values, errors="coerce", format="ISO8601")
        num = (dates - pd.Timestamp(reference_date)).dt.days.to_numpy(dtype="float64", na_value=np.nan)
    elif sc.kind in ("bool", "age_band"):
        num = _via_uniques(raw, _unique_fn(sc))
    else:  # category, hashed: an unknown or unreadable value is missing, not an error
        return _via_uniques(raw, _unique_fn(sc))
    bad = present & np.isnan(num)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        example = str(values.iloc[first])[:40]
        raise ValueError(
            f"column {sc.name!r}: {int(bad.sum())} value(s) cannot be read as {sc.kind} "
            f"(first at row {first}: {example!r})"
        )
    return num


def _encode_arrow(values: pd.Series, sc: ServingColumn) -> np.ndarray | None:
    """:func:`encode_column` of an Arrow string column in Arrow's C++ kernels; ``None`` = use the object path.

    The result is bit for bit what the object path gives (pinned by a test): numbers through Arrow's
    string-to-float64 cast (correctly rounded, as pandas' parser and the pyarrow CSV reader that wrote
    the training data are), categories through one dictionary encoding and the same per-value function
    on the distinct values. Wherever the two could differ or the object path raises (text Arrow cannot
    cast, a non-finite number, a negative zero, a value that is not of the column's kind, dates), it
    returns ``None`` and the object path decides, with its error messages.
    """
    import pyarrow as pa  # present whenever an Arrow column is: the inference image ships it
    import pyarrow.compute as pc

    array = values.array.__arrow_array__()
    if sc.kind == "date" or not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    if sc.kind == "numeric":
        try:
            num = pc.cast(array, pa.float64()).to_numpy()  # nulls -> NaN
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        finite = np.isfinite(num)
        if not finite.all() and (pc.is_valid(array).to_numpy(zero_copy_only=False) & ~finite).any():
            return None  # a value read as NaN or infinity: an error to report (a null is NaN, and fine)
        if np.signbit(num[num == 0]).any():
            return None  # -0 (pandas reads an integer "-0" as +0)
        return num
    encoded = pc.dictionary_encode(array).combine_chunks()
    uniques = encoded.dictionary.to_pylist()
    codes = pc.fill_null(encoded.indices, -1).to_numpy()
    fn = _unique_fn(sc)
    mapped = np.array([fn(u) for u in uniques], dtype="float64")
    if sc.kind in ("bool", "age_band") and np.isnan(mapped).any():
        return None  # a value that is not a boolean / an age band: the object path raises
    return _by_code(codes, mapped)


def _unique_fn(sc: ServingColumn) -> Any:
    """The text -> float function applied to each distinct value of a non-numeric column."""
    if sc.kind == "bool":
        return _bool_or_nan
    if sc.kind == "age_band":
        return _band_lower_or_nan
    if sc.kind == "category":
        index = {c: float(i) for i, c in enumerate(sc.categories)}
        return lambda u: index.get(u, np.nan)  # unknown: missing, not an error
    return lambda u: float(stable_bucket(u))


def _to_float(values: pd.Series | np.ndarray) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.full(len(values), np.nan)  # a boolean where a number is expected is a type error
    num = pd.to_numeric(values, errors="coerce")
    if isinstance(num, np.ndarray):  # an ndarray in: a float/int/bool ndarray out (missing already NaN)
        arr = num.astype("float64")
    else:
        arr = np.asarray(num.to_numpy(dtype="float64", na_value=np.nan), dtype="float64")
    return np.where(np.isinf(arr), np.nan, arr)


def _bool_or_nan(text: str) -> float:
    low = text.strip().lower()
    return 1.0 if low in _TRUE else 0.0 if low in _FALSE else np.nan


def _band_lower_or_nan(text: str) -> float:
    match = _AGE_BAND_RE.match(text)
    return float(match.group(1)) if match else np.nan


def _via_uniques(values: pd.Series | np.ndarray, fn: Any) -> np.ndarray:
    """Apply ``fn`` (text -> float) once per distinct value; missing stays NaN.

    Categorical columns have few distinct values, so this is one factorize plus a tiny loop.
    """
    codes, uniques = pd.factorize(values)
    return _by_code(codes, np.array([fn(str(u)) for u in uniques], dtype="float64"))


def _by_code(codes: np.ndarray, mapped: np.ndarray) -> np.ndarray:
    """``mapped[code]`` for each row's code into the distinct values; NaN where the code is -1 (missing)."""
    # One gather: code -1 picks the NaN appended at the end.
    return np.append(np.asarray(mapped, dtype="float64"), np.nan)[codes]


@functools.lru_cache(maxsize=1 << 16)
def stable_bucket(value: str) -> int:
    """Bucket of a category without a fixed vocabulary; stable across processes and versions.

    Cached: a pure function, and a request batch repeats the same few hundred values (postcode prefixes).
    """
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


# --- versions recorded with the curated data ---------------------------------------------------------

#: Parquet schema-metadata keys of the curated splits (written by preprocess, read by train).
CURATED_TOKEN_VERSION_KEY = "flywheel.token_version"  # noqa: S105 (a metadata key, not a secret)
CURATED_SPLIT_VERSION_KEY = "flywheel.split_version"


def curated_versions(directory: str | Path) -> dict[str, int | None]:
    """``token_version`` and ``split_version`` of the curated parquet files under ``directory``.

    ``None`` for data written before the versions were recorded (token version 1, split version 1).
    Raises ValueError if the files disagree (splits written by different constructions).
    """
    import pyarrow.parquet as pq

    found: dict[str, set[int | None]] = {"token_version": set(), "split_version": set()}
    for path in sorted(Path(directory).rglob("*.parquet")):
        meta = pq.read_schema(path).metadata or {}
        for name, key in (("token_version", CURATED_TOKEN_VERSION_KEY), ("split_version", CURATED_SPLIT_VERSION_KEY)):
            raw = meta.get(key.encode())
            found[name].add(int(raw) if raw is not None else None)
    out: dict[str, int | None] = {}
    for name, values in found.items():
        if len(values) > 1:
            mixed = sorted(values, key=str)
            raise ValueError(f"curated files under {directory} mix {name}s {mixed}: re-run preprocess")
        out[name] = next(iter(values)) if values else None
    return out
