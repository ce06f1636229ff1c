"""Serving functions for a SageMaker framework container (``model_fn``/``input_fn``/``predict_fn``/``output_fn``).

A request carries the *curated* feature columns, exactly as preprocessing writes them: generalized
quasi-identifiers (``date_of_birth_age_band`` = ``"30-39"``, ``postcode_prefix`` = ``"941"``,
``signup_date_year`` = ``2024``) instead of raw dates of birth or postcodes, and no id, direct
identifier or target. So neither the endpoint nor its data capture ever sees a raw quasi-identifier, and
drift monitoring compares captured requests with the baseline column for column.

- ``text/csv``: no header, one row per line, the columns of :func:`features.serving_names` in contract
  order (``metadata.json`` lists them as ``feature_names``); an empty field is a missing value.
- ``application/json``: ``{"instances": [[...], ...]}`` (rows in the CSV column order),
  ``{"instances": [{"col": value, ...}, ...]}`` or a bare list of either.

Responses (``application/json``; ``text/csv`` gives the same fields, one line per row):
binary ``{"predictions": [{"probability": p_positive, "label": l}]}``, multiclass
``{"class_labels": [...], "predictions": [{"probabilities": [...], "label": l}]}``, regression
``{"predictions": [{"value": v}]}``. Bad input raises ValueError (HTTP 400 in a server); an unknown
category value is not an error (it is treated as missing and shows up in drift monitoring).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from contract import DataContract, load_contract
from features import ENCODING_VERSION, PARALLEL_ENCODE_ROWS, encode, feature_types, serving_names
from xgboost_core import xgb

MODEL_FILE = "xgboost-model.json"
METADATA_FILE = "metadata.json"
CONTRACT_FILE = "contract.json"
JSON = "application/json"
CSV = "text/csv"
BINARY_THRESHOLD = 0.5
#: ASCII bytes ``str.strip`` removes, but the line end (a body with non-ASCII bytes or quotes is always trimmed).
_WHITESPACE = tuple(bytes([b]) for b in b" \t\v\f\x1c\x1d\x1e\x1f")
#: XGBoost threads per prediction in a serving process (booster ``nthread``, set at load).
#: One: a request is at most a few thousand rows, where a second OpenMP thread saves ~0.4 ms of wall time
#: per 1,000 rows on an idle host but costs more CPU than it saves and spins for milliseconds on a loaded
#: one; the server already runs requests in parallel (threads here, one worker per vCPU in SageMaker's
#: model server). ``FLYWHEEL_PREDICT_THREADS`` overrides it (0 = XGBoost's default, all cores).
#: See docs/decisions.md, "XGBoost threads in serving".
PREDICT_THREADS = 1
#: From this many rows a request is encoded, predicted and written in slices, one per core (:func:`_spans`): a
#: batch-transform payload, where the thread start-up is small against the work (the size from which
#: ``features.encode`` uses every core, too).
PARALLEL_PREDICT_ROWS = PARALLEL_ENCODE_ROWS
#: CSV bodies from this size on are parsed by pyarrow (:func:`_arrow_csv`); a single row stays with ``csv``.
ARROW_CSV_BYTES = 2048
#: CSV bodies from this size on are parsed on all cores (a batch-transform payload; ~12,000 churn rows).
PARALLEL_PARSE_BYTES = 1 << 20
#: Whether this pandas holds Arrow arrays as columns (pandas >= 1.5): the batch path keeps the parse in Arrow.
_ARROW_DTYPE = hasattr(pd, "ArrowDtype")
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads a batch request's slices run on (one per core, started on first use and kept: a fresh
    pool per stage cost ~0.3 ms a request). Its tasks never wait on each other, so requests can share it."""
    global _POOL  # one per loaded copy of this module, made by the first batch request
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="flywheel-batch")
        return _POOL


@dataclass(frozen=True)
class Model:
    """A loaded model: booster, its metadata and the contract that defines its features."""

    booster: xgb.Booster
    metadata: dict[str, Any]
    contract: DataContract
    #: XGBoost threads of ``booster`` (``FLYWHEEL_PREDICT_THREADS``; 0 = XGBoost's default, every core). A large
    #: request (:data:`PARALLEL_PREDICT_ROWS`) is predicted in ``cores // threads`` slices at once, so that it
    #: uses every core whatever the setting.
    threads: int = PREDICT_THREADS

    @property
    def columns(self) -> list[str]:
        """Request columns, in CSV order."""
        return list(self.metadata["feature_names"])

    @property
    def problem(self) -> str:
        """``binary``, ``multiclass`` or ``regression``."""
        return str(self.metadata["problem"])

    @property
    def labels(self) -> list[Any]:
        """Class labels in model order (empty for regression)."""
        return list(self.metadata["class_labels"])


def model_fn(model_dir: str) -> Model:
    """Load ``xgboost-model.json``, ``metadata.json`` and ``contract.json`` from ``model_dir``.

    Refuses a model whose feature encoding or contract does not match this code, rather than serving
    silently wrong predictions.
    """
    root = Path(model_dir)
    metadata = json.loads((root / METADATA_FILE).read_text(encoding="utf-8"))
    contract = load_contract(root / CONTRACT_FILE)
    if metadata.get("encoding_version") != ENCODING_VERSION:
        raise ValueError(
            f"model was trained with feature encoding {metadata.get('encoding_version')}, "
            f"this code implements {ENCODING_VERSION}"
        )
    digest = hashlib.sha256(contract.to_json().encode()).hexdigest()
    if metadata.get("contract_sha256") not in (None, digest):
        raise ValueError("contract.json does not match the contract the model was trained with")
    if metadata["feature_names"] != serving_names(contract):
        raise ValueError("model feature names do not match the contract's serving columns")
    booster = xgb.Booster()
    booster.load_model(root / MODEL_FILE)
    # predict_scores predicts in place: the feature types saved with the booster decide which columns are
    # categorical, so they must be the contract's (a model saved without them would split on codes as numbers).
    if booster.feature_types != feature_types(contract) or booster.feature_names != metadata["feature_names"]:
        raise ValueError(
            "the booster's saved feature names/types do not match the contract's serving columns: "
            "retrain the model with this template's train step"
        )
    threads = predict_threads()
    if threads:
        booster.set_param({"nthread": threads})
    return Model(booster, metadata, contract, threads=threads)


def predict_threads() -> int:
    """XGBoost threads for serving: ``FLYWHEEL_PREDICT_THREADS`` if set (0 = all cores), else the default."""
    raw = os.environ.get("FLYWHEEL_PREDICT_THREADS", "").strip()
    if not raw:
        return PREDICT_THREADS
    if not raw.isdigit():
        raise ValueError(f"FLYWHEEL_PREDICT_THREADS must be a whole number of threads (0 = all cores), got {raw!r}")
    return int(raw)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def input_fn(request_body: str | bytes, content_type: str) -> pd.DataFrame:
    """Parse a request into a frame of raw text values (``object`` dtype; a CSV batch: Arrow strings).

    Positional rows (CSV, JSON lists) get integer column labels; JSON objects keep their keys.
    :func:`predict_fn` checks the columns against the model.
    """
    media = _media_type(content_type)
    if media == CSV and len(request_body) >= ARROW_CSV_BYTES:
        parsed = _arrow_csv(request_body)
        if parsed is not None:
            return parsed
    text = request_body.decode("utf-8") if isinstance(request_body, bytes | bytearray) else str(request_body)
    if media == CSV:
        rows = [[None if v.strip() == "" else v.strip() for v in row] for row in csv.reader(io.StringIO(text)) if row]
        return _positional(rows)
    if media == JSON:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"request body is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
        instances = payload.get("instances") if isinstance(payload, dict) else payload
        if not isinstance(instances, list):
            raise ValueError('JSON body must be {"instances": [...]} or a list of rows or objects')
        if not instances:
            raise ValueError("request has no instances")
        if all(isinstance(r, dict) for r in instances):
            cols = list(dict.fromkeys(k for r in instances for k in r))
            missing = [(i, c) for i, r in enumerate(instances) for c in cols if c not in r]
            if missing:
                i, c = missing[0]
                raise ValueError(f"instance {i} has no value for column {c!r}")
            return pd.DataFrame([[r[c] for c in cols] for r in instances], columns=cols, dtype=object)
        if all(isinstance(r, list) for r in instances):
            return _positional(instances)
        raise ValueError("instances must all be lists (column order) or all be objects (column names)")
    raise ValueError(f"unsupported content type {content_type!r}: use {CSV} or {JSON}")


def _arrow_csv(body: str | bytes | bytearray) -> pd.DataFrame | None:
    """The CSV path of :func:`input_fn` through pyarrow's C++ reader (a batch: ~10x less CPU per row).

    The same frame as the ``csv`` module path: every field as text, whitespace-stripped (Arrow's
    ``utf8_trim_whitespace`` strips the characters ``str.strip`` does), empty fields missing, blank lines
    skipped, quotes and quoted newlines as Excel writes them. ``None`` where the two could differ or the
    body is malformed (ragged rows, invalid UTF-8, a byte-order mark, no pyarrow): the ``csv`` module path
    then parses it and raises its own error.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
    except ImportError:  # pragma: no cover - every image of the pipeline ships pyarrow
        return None
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if data.startswith(b"\xef\xbb\xbf") or b"\r" in data:  # BOM / CR line ends: leave them to csv
        return None
    end = data.find(b"\n")
    width = data.count(b",", 0, end if end >= 0 else len(data)) + 1  # an upper bound (a quoted comma only adds one)
    quoted = b'"' in data
    ascii_only = data.isascii()  # one pass (~0.3 ms of 6 MB)
    parallel = len(data) >= PARALLEL_PARSE_BYTES

    def parse() -> Any:
        # Empty fields, quoted or not, are null: what csv + strip makes of them, with or without the trim below
        # (which makes a whitespace-only field empty, then null), so the parse does not wait for the check.
        # ASCII is valid UTF-8 and a body without '"' has nothing to unquote: the reader skips that work then
        # (~15 % of its time), with the same table.
        try:
            return pacsv.read_csv(
                pa.py_buffer(data),
                read_options=pacsv.ReadOptions(autogenerate_column_names=True, use_threads=parallel),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=quoted, ignore_empty_lines=True, quote_char='"' if quoted else False
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={f"f{i}": pa.string() for i in range(width)},
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                    check_utf8=not ascii_only,
                ),
            )
        except (pa.ArrowInvalid, ValueError):
            return None

    def needs_trim() -> bool:
        # Only a body with whitespace (or text other than ASCII, or quotes) can have a field to strip.
        return not ascii_only or quoted or any(w in data for w in _WHITESPACE)

    if parallel:
        # A batch payload: Arrow's threads parse it (without the GIL) while this one looks for whitespace
        # (8 memchr passes, ~1.6 ms of a 6 MB body).
        parsed = _pool().submit(parse)
        trim = needs_trim()
        table = parsed.result()
    else:
        trim, table = needs_trim(), parse()
    if table is None:
        return None
    if not table.num_rows:
        return None
    columns = {}
    for i, column in enumerate(table.columns):
        if trim:
            text = pc.utf8_trim_whitespace(column)
            column = pc.if_else(pc.equal(text, ""), None, text)
        # The Arrow strings themselves (no Python object per value): features.encode reads them in
        # Arrow's kernels. A pandas without ArrowDtype gets the object columns of the csv path.
        columns[i] = pd.arrays.ArrowExtensionArray(column) if _ARROW_DTYPE else column.to_numpy(zero_copy_only=False)
    return pd.DataFrame(columns) if _ARROW_DTYPE else pd.DataFrame(columns, dtype=object)


def _positional(rows: list[list[Any]]) -> pd.DataFrame:
    if not rows:
        raise ValueError("request has no rows")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} values, row 0 has {width}")
    return pd.DataFrame(rows, columns=range(width), dtype=object)


def align(data: pd.DataFrame, model: Model) -> pd.DataFrame:
    """Name positional columns / check named ones against the model; ValueError on mismatch."""
    cols = model.columns
    if all(isinstance(c, int | np.integer) for c in data.columns):
        if data.shape[1] != len(cols):
            raise ValueError(f"expected {len(cols)} values per row ({', '.join(cols)}), got {data.shape[1]}")
        return data.set_axis(cols, axis=1)
    unknown = [str(c) for c in data.columns if c not in cols]
    if unknown:
        raise ValueError(f"unknown column(s): {', '.join(unknown)}; expected {', '.join(cols)}")
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)}")
    return data[cols]


def _spans(rows: int, threads: int = 1) -> list[tuple[int, int]]:
    """``[start, end)`` row slices of a request: from :data:`PARALLEL_PREDICT_ROWS` rows one per ``threads``
    cores (each slice's work using that many), else one."""
    workers = (os.cpu_count() or 1) // threads if threads > 0 else 1
    if rows < PARALLEL_PREDICT_ROWS or workers < 2:
        return [(0, rows)]
    return list(itertools.pairwise(rows * i // workers for i in range(workers + 1)))


def predict_scores(frame: pd.DataFrame, model: Model) -> np.ndarray:
    """Model output for a frame with the serving columns: P(positive), class probabilities or values."""

    def scores_of(part: pd.DataFrame, *, parallel: bool = True) -> np.ndarray:
        # In-place prediction on the encoded matrix: the booster's own feature types (checked against the
        # contract in model_fn) mark the categorical columns, so the scores are bit for bit those of a
        # DMatrix built with them (pinned by a test), without building one (~0.7 ms a request).
        matrix = encode(part, model.contract, parallel=parallel)
        return np.asarray(model.booster.inplace_predict(matrix, missing=np.nan), dtype="float64")

    spans = _spans(len(frame), model.threads)
    if len(spans) == 1:
        scores = scores_of(frame)
    else:
        # A batch-transform payload: each core encodes and predicts its own slice on the one-thread booster
        # (prediction is thread-safe and row by row, so the scores are the same). Against one frame encoded
        # a column per core and predicted on an all-cores booster, this saves the threads' hand-offs and
        # OpenMP's spinning between them: ~15 % of the request's CPU time.
        try:
            parts = list(_pool().map(lambda s: scores_of(frame.iloc[s[0] : s[1]], parallel=False), spans))
        except ValueError:
            try:
                encode(frame, model.contract)  # the error as the whole request's rows number it
            except ValueError as whole:
                raise whole from None  # not chained to the slice's (another row number)
            raise
        scores = np.concatenate(parts)
    if model.problem == "multiclass":  # float32 rows may miss 1.0 by an ulp; metrics check the sum
        scores = scores / scores.sum(axis=1, keepdims=True)
    return scores


def decision_threshold(model: Model) -> float:
    """The binary decision threshold chosen at training (``metadata.json``), else ``BINARY_THRESHOLD``."""
    chosen = model.metadata.get("decision_threshold") or {}
    value = chosen.get("value") if isinstance(chosen, dict) else None
    return float(value) if isinstance(value, int | float) and 0 < value < 1 else BINARY_THRESHOLD


def predict_fn(data: pd.DataFrame, model: Model) -> dict[str, Any]:
    """Predict for a parsed request: ``{"problem", "scores", "labels", "class_labels", "label_index"}``."""
    scores = predict_scores(align(data, model), model)
    if model.problem == "binary":
        cut = decision_threshold(model)
        index = (scores >= cut).astype(np.intp)  # NaN >= cut is False: the first label
    elif model.problem == "multiclass":
        index = np.argmax(scores, axis=1)
    else:
        index = None
    labels = [] if index is None else _pick(model.labels, index)
    return {
        "problem": model.problem,
        "scores": scores,
        "labels": labels,
        "class_labels": model.labels,
        "label_index": index,  # each label's position in class_labels (output_fn serializes each class once)
    }


def negotiate(accept: str | None) -> str:
    """The response media type for an ``Accept`` header (JSON by default); ValueError if unsupported."""
    for part in (accept or "").split(","):
        media = _media_type(part)
        if media in ("", "*/*", "application/*"):
            return JSON
        if media in (JSON, CSV):
            return media
    raise ValueError(f"unsupported accept type {accept!r}: use {JSON} or {CSV}")


def _pick(labels: list[Any], index: np.ndarray) -> list[Any]:
    """``[labels[i] for i in index]`` in one numpy gather (the label objects themselves, not copies)."""
    table = np.empty(len(labels), dtype=object)
    table[:] = labels
    return table[index].tolist()


def output_fn(prediction: dict[str, Any], accept: str) -> str:
    """Serialize :func:`predict_fn` output as JSON or CSV (media type from :func:`negotiate`).

    The text is exactly what ``json.dumps`` of the records (or ``csv.writer``) writes (pinned by a test),
    built in Arrow's kernels: each score's shortest round-trip digits (what ``repr`` writes), each distinct
    label serialized once, every row's text joined element-wise (CSV whose labels need no quoting: written
    by Arrow's CSV writer) and the rows read as one buffer.
    Non-finite scores (never produced by the model, but possible) take the record-by-record path.
    """
    media = negotiate(accept)
    problem, scores, labels = prediction["problem"], prediction["scores"], prediction["labels"]
    classes = prediction["class_labels"]
    if len(scores) and np.isfinite(scores).all():
        index = prediction.get("label_index")
        fast = _arrow_output(problem, np.asarray(scores, dtype="float64"), labels, classes, index, media)
        if fast is not None:
            return fast
    return _records_output(problem, scores, labels, classes, media)


#: Scores whose Arrow text is laid out as ``repr`` lays it out: positional, with a fraction. Arrow writes
#: the same shortest round-trip digits everywhere but prints whole numbers without ``.0`` and switches to
#: an exponent at other magnitudes (``0.00001`` for ``1e-05``), so those few scores are written by ``repr``.
_REPR_LAYOUT = (1e-4, 1e10)
#: Characters of a CSV cell that Arrow's CSV writer refuses unquoted (csv.writer quotes the first three; a
#: lone ``\r`` it leaves bare, Arrow does not).
_CSV_SPECIAL = (",", '"', "\n", "\r")


def _arrow_output(
    problem: str, values: np.ndarray, labels: list[Any], classes: list[Any], index: Any, media: str
) -> str | None:
    """The response text through pyarrow; ``None`` without pyarrow or where it cannot vouch for the text."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - every image of the pipeline ships pyarrow
        return None
    if not _arrow_writes_repr(pa, pc):
        return None
    n = len(values)
    shaped = values.ndim == 2 and values.shape[1] > 0 if problem == "multiclass" else values.ndim == 1
    if problem not in ("binary", "multiclass", "regression") or not shaped:
        return None  # not a prediction of this module: the record path writes (or refuses) it
    if problem != "regression" and len(labels) != n:
        return None
    label_text, cells = (None, []) if problem == "regression" else _label_text(pa, labels, classes, index, media)
    # Arrow's CSV writer never quotes: only labels whose cells csv.writer leaves bare (and Arrow accepts) go
    # through it, decided once from the distinct cells rather than by a write that fails half-way.
    writer = media == CSV and not any(c in cell for cell in cells for c in _CSV_SPECIAL)
    # A batch-transform payload is written in slices on all cores (Arrow's kernels release the GIL);
    # the slices' rows, joined in order, are the same text.
    spans = _spans(n)

    def rows(span: tuple[int, int]) -> memoryview:
        a, b = span
        labels_ab = None if label_text is None else label_text.slice(a, b - a)
        return _row_text(pa, pc, problem, values[a:b], labels_ab, media, writer)

    parts: list[bytes | memoryview]
    parts = [rows(spans[0])] if len(spans) == 1 else list(_pool().map(rows, spans))
    # The parts are Arrow's UTF-8 bytes: joined once and decoded once (a batch payload's text is megabytes,
    # and every intermediate string would be another copy of it).
    if media == JSON:
        parts[-1] = parts[-1][:-2]  # each row ends with ", "
        tail = "]"
        if problem == "multiclass":
            tail += ', "class_labels": ' + json.dumps([_jsonable(c) for c in classes])
        parts = [b'{"predictions": [', *parts, (tail + "}").encode()]
    return b"".join(parts).decode("utf-8")


def _label_text(pa: Any, labels: list[Any], classes: list[Any], index: Any, media: str) -> tuple[Any, list[str]]:
    """Each row's label as its JSON/CSV text (an Arrow string array), and the distinct texts: every distinct
    label serialized once.

    ``index``: positions in ``classes`` (what :func:`predict_fn` hands over); without a usable one (a
    prediction built elsewhere), the distinct label objects themselves, told apart by type and ``repr``
    (``-0.0`` and ``0.0`` are two labels).
    """
    if index is not None:
        index = np.asarray(index)
        if len(index) != len(labels) or (len(index) and (index.min() < 0 or index.max() >= len(classes))):
            index = None
    if index is None:
        positions: dict[tuple[type, str], int] = {}
        distinct: list[Any] = []
        codes: list[int] = []
        for lab in labels:
            key = (type(lab), repr(lab))
            if key not in positions:
                positions[key] = len(distinct)
                distinct.append(lab)
            codes.append(positions[key])
        index = codes
    else:
        distinct = list(classes)
    if media == JSON:
        texts = [json.dumps(_jsonable(lab)) for lab in distinct]
    else:
        texts = [_csv_cell(_jsonable(lab)) for lab in distinct]
    return pa.array(texts, pa.string()).take(pa.array(np.asarray(index, dtype=np.int64))), texts


def _row_text(
    pa: Any, pc: Any, problem: str, values: np.ndarray, label_text: Any, media: str, writer: bool = False
) -> memoryview:
    """The rows of a response (JSON: each record followed by ``", "``; CSV: each line), as UTF-8 bytes.
    ``writer``: a CSV response whose labels' cells need no quoting, written by Arrow's CSV writer."""
    columns = [values] if values.ndim == 1 else list(values.T)
    if writer:
        return _written_csv(pa, pc, columns, label_text)
    numbers = [_float_text(pa, pc, col) for col in columns]
    pieces: list[Any]
    if media == JSON:
        if problem == "binary":
            pieces = ['{"probability": ', numbers[0], ', "label": ', label_text, "}, "]
        elif problem == "multiclass":
            pieces = ['{"probabilities": [', *_between(numbers, ", "), '], "label": ', label_text, "}, "]
        else:
            pieces = ['{"value": ', numbers[0], "}, "]
    elif problem == "regression":
        pieces = [numbers[0], "\n"]
    else:
        pieces = [*_between(numbers, ","), ",", label_text, "\n"]
    return _joined(pa, pc, pieces)


def _between(items: list[Any], separator: str) -> list[Any]:
    """``items`` with ``separator`` between each two (the pieces of a joined row)."""
    out: list[Any] = []
    for i, item in enumerate(items):
        out += [separator, item] if i else [item]
    return out


def _written_csv(pa: Any, pc: Any, columns: list[np.ndarray], label_text: Any) -> memoryview:
    """CSV lines of the score columns (and labels, whose cells need no quoting) through Arrow's CSV writer.

    Its number text is the cast :func:`_float_text` uses; a column with a score ``repr`` lays out otherwise is
    handed over as :func:`_float_text`'s strings instead. ~15 % less CPU than joining the pieces (binary).
    """
    import pyarrow.csv as pacsv  # with pyarrow (the caller imported it)

    fields = [_float_text(pa, pc, col, other) if (other := _repr_only(col)).any() else pa.array(col) for col in columns]
    fields += [] if label_text is None else [label_text]
    sink = pa.BufferOutputStream()
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")  # "none": written as they are
    pacsv.write_csv(pa.table(fields, names=[str(i) for i in range(len(fields))]), sink, write_options=options)
    return memoryview(sink.getvalue())


def _repr_only(values: np.ndarray) -> np.ndarray:
    """Where Arrow's number text is not laid out as ``repr``'s (see :data:`_REPR_LAYOUT`)."""
    size = np.abs(values)
    return (size < _REPR_LAYOUT[0]) | (size >= _REPR_LAYOUT[1]) | (values == np.floor(values))


def _float_text(pa: Any, pc: Any, values: np.ndarray, other: np.ndarray | None = None) -> Any:
    """Arrow strings of ``values`` exactly as ``repr`` writes them (outside :data:`_REPR_LAYOUT`: by repr;
    ``other``: :func:`_repr_only` of ``values``, if known)."""
    text = pc.cast(pa.array(values), pa.string())
    other = _repr_only(values) if other is None else other
    if other.any():
        by_repr = pa.array([repr(v) for v in values[other].tolist()], pa.string())
        text = pc.replace_with_mask(text, pa.array(other), by_repr)
    return text


def _joined(pa: Any, pc: Any, pieces: list[Any]) -> memoryview:
    """The rows of ``pieces`` (strings and Arrow string arrays, element-wise) as one UTF-8 buffer (a view of
    the joined array's data, which it keeps alive)."""
    rows = pc.binary_join_element_wise(*pieces, "")
    ends = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset : rows.offset + len(rows) + 1]
    return memoryview(rows.buffers()[2])[int(ends[0]) : int(ends[-1])]


_ARROW_REPR: bool | None = None


def _arrow_writes_repr(pa: Any, pc: Any) -> bool:
    """Whether this pyarrow writes ``repr``'s digits inside :data:`_REPR_LAYOUT` (checked once, on values
    where a formatter that is not shortest-round-trip would differ)."""
    global _ARROW_REPR  # a once-per-process check of the installed library
    if _ARROW_REPR is None:
        probe = [0.1, 2 / 3, 0.30000000000000004, 1e-4, 0.12345678901234568, 9999999999.999998, 0.5, 1.5e-4]
        _ARROW_REPR = pc.cast(pa.array(probe), pa.string()).to_pylist() == [repr(v) for v in probe]
    return _ARROW_REPR


def _csv_cell(value: Any) -> str:
    """One field as ``csv.writer`` writes it in a row of several (quoted if it needs to be)."""
    if value is None or (isinstance(value, str) and value == ""):
        return ""  # alone in a row csv.writer quotes an empty field (""), next to others it does not
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([value])
    return out.getvalue()[:-1]


def _records_output(problem: str, scores: np.ndarray, labels: list[Any], classes: list[Any], media: str) -> str:
    if problem == "binary":
        records: list[dict[str, Any]] = [
            {"probability": float(p), "label": _jsonable(lab)} for p, lab in zip(scores, labels, strict=True)
        ]
    elif problem == "multiclass":
        records = [
            {"probabilities": [float(x) for x in row], "label": _jsonable(lab)}
            for row, lab in zip(scores, labels, strict=True)
        ]
    else:
        records = [{"value": float(v)} for v in scores]
    if media == JSON:
        body: dict[str, Any] = {"predictions": records}
        if problem == "multiclass":
            body["class_labels"] = [_jsonable(c) for c in classes]
        return json.dumps(body)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for rec in records:
        if problem == "multiclass":
            writer.writerow([*rec["probabilities"], rec["label"]])
        else:
            writer.writerow(list(rec.values()))
    return out.getvalue()


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
