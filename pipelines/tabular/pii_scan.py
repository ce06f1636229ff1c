"""Verified pseudonymization: prove that the step's outputs hold no PII in clear, before anything trains.

Runs inside the preprocessing job, right after :func:`preprocess.preprocess` has written its outputs and
before SageMaker uploads them (:func:`verify_outputs`), and locally on any file (:func:`scan_paths`; the
local runtime also scans the evaluation report and the capture files with it). It proves two things
about every scanned file, and reports each finding by *file, column and detector* — never the value:

1. **No raw identifier in clear.** Every value of the contract's ``id`` and ``direct_identifier`` columns
   in the raw input (from the record batches the step read, :class:`IdentifierHashes`, else read back from
   the job's input folder) is normalized (whitespace-trimmed, lower-cased) and hashed
   (:func:`text_hashes`, 64-bit, on Arrow's buffers; the values themselves are not kept). A string cell of an output
   (a parquet/CSV cell, a JSON string value or key) equal to one of them is a finding
   (``identifier:<column>``). Token-shaped cells are compared only when some raw identifier is itself
   token-shaped (32 hex characters, e.g. UUIDs without dashes): otherwise an HMAC token cannot equal a
   raw value. The curated ``id`` columns must hold HMAC tokens (32 lowercase hex characters):
   anything else there is a finding (``untokenized``).
2. **No PII-shaped strings at all** (:data:`DETECTORS`, a deliberately small documented set), in every
   string cell of every output, whatever its column is called:

   ``email``  ``local@domain.tld`` (RFC 5322's common form: ``[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}``)
   ``phone``  an international number (``+`` and 7-15 digits, separators allowed) or 10-15 digits in at
              least three separated groups (``555-123-4567``, ``(0)20 7946 0958``); dates and
              ranges (``2026-01-01``, ``30-39``) have too few digits
   ``card``   13-19 digits, optionally in groups separated by one space or hyphen, passing the Luhn
              check (ISO/IEC 7812); integer cells of 13-19 digits are Luhn-checked too

A 32-hex HMAC token matches none of the detectors by construction (no ``@``, no separators, digits
inside a word), so token columns are checked for their shape only.

Output (:func:`verify_outputs`): ``status/pii-scan.json`` and ``status/pii-scan-<host>.json``
(``passed``, ``summary``, ``findings``: ``[{file, column, detector, count}]``, counts of files, rows and
cells, the detector set). On a finding the curated splits and the baseline are **deleted from the job's
output folder before upload**, so nothing with PII reaches the features or artifacts zones; the
pipeline's ``PiiScanCheck`` condition then fails the run before training (``PiiScanFailed``).

Imports only the standard library, numpy and pyarrow (and sibling step modules).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from contract import DataContract
from validation import list_input_files

#: The detector set (name -> what it finds); :func:`shape_findings` implements them.
DETECTORS: Final[dict[str, str]] = {
    "email": "e-mail address shape local@domain.tld",
    "phone": "phone number: '+' and 7-15 digits, or 10-15 digits in 3+ separated groups",
    "card": "payment card number: 13-19 digits (optionally grouped) passing the Luhn check",
    "identifier": "a cell equal to a raw id/direct_identifier value (trimmed, lower-cased; 64-bit hash)",
    "untokenized": "an id column value that is not a 32-hex HMAC token",
}
STATUS_FILE: Final = "pii-scan.json"
TOKEN_RE: Final = re.compile(r"^[0-9a-f]{32}$")
EMAIL_RE: Final = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# A run of digit groups: the candidate for both phone and card numbers (checked further in Python).
_GROUPS_RE: Final = re.compile(
    r"(?<![\w+])(\+)?(?:\(\d{1,4}\)|\d{1,6})(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,6})){0,7}(?!\w|:\d)"
)
_DIGIT_CHARS: Final = re.compile(r"\d")
_ANY_DIGIT_RUN: Final = re.compile(r"\d{2}")
#: Output channels of the preprocessing job that are scanned (quarantine stays in the raw zone by design).
SCANNED_CHANNELS: Final[tuple[str, ...]] = ("train", "validation", "test", "baseline", "status")
#: Channels removed from the job's output when the scan finds PII (so they are never uploaded).
WITHHELD_CHANNELS: Final[tuple[str, ...]] = ("train", "validation", "test", "baseline")
SCANNED_SUFFIXES: Final[tuple[str, ...]] = (".parquet", ".pq", ".csv", ".json", ".jsonl")


@dataclass(frozen=True)
class Finding:
    """One detector hit: the file, the column (or JSON path) and how many cells; never the value."""

    file: str
    column: str
    detector: str
    count: int

    def describe(self) -> str:
        """``<file>: column <column>: <count> <detector> value(s)``."""
        return f"{self.file}: column {self.column!r}: {self.count} {self.detector} value(s)"


@dataclass
class ScanReport:
    """What a scan looked at and found."""

    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    cells: int = 0
    seconds: float = 0.0
    identifier_values: int = 0

    @property
    def passed(self) -> bool:
        """No finding."""
        return not self.findings

    def summary(self) -> str:
        """One line: passed, or the findings (file, column, detector, count)."""
        if self.passed:
            return (
                f"PII scan passed: {self.files} file(s), {self.rows} row(s), {self.cells} cell(s); no raw "
                f"identifier in clear and no e-mail/phone/card-shaped value"
            )
        shown = "; ".join(f.describe() for f in self.findings[:10])
        more = f"; and {len(self.findings) - 10} more" if len(self.findings) > 10 else ""
        return f"PII scan failed: {len(self.findings)} finding(s): {shown}{more}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the status file's content)."""
        return {
            "passed": self.passed,
            "summary": self.summary(),
            "findings": [asdict(f) for f in self.findings],
            "files": self.files,
            "rows": self.rows,
            "cells": self.cells,
            "identifier_values": self.identifier_values,
            "seconds": round(self.seconds, 3),
            "detectors": sorted(DETECTORS),
        }


# --- detectors -------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a digit string (ISO/IEC 7812)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_phone(match: re.Match[str]) -> bool:
    text = match.group(0)
    digits = len(_DIGIT_CHARS.findall(text))
    if match.group(1):  # international form
        return 7 <= digits <= 15
    groups = len(re.findall(r"\d+", text))
    return 10 <= digits <= 15 and groups >= 3


def _is_card(match: re.Match[str]) -> bool:
    text = match.group(0)
    if match.group(1) or "(" in text or "." in text:
        return False
    if re.search(r"[ -][ -]", text):
        return False
    digits = re.sub(r"[ -]", "", text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


@functools.lru_cache(maxsize=1 << 16)
def shape_findings(text: str) -> frozenset[str]:
    """The shape detectors (``email``, ``phone``, ``card``) that match somewhere in ``text``.

    Cached (a pure function, and the record batches of one output repeat the same distinct values);
    :func:`scan_paths` clears the cache when its scan ends, so no scanned text outlives the scan.
    """
    found: set[str] = set()
    if "@" in text and EMAIL_RE.search(text):
        found.add("email")
    if _ANY_DIGIT_RUN.search(text):
        for match in _GROUPS_RE.finditer(text):
            if "phone" not in found and _is_phone(match):
                found.add("phone")
            if "card" not in found and _is_card(match):
                found.add("card")
    return frozenset(found)


# --- identifiers -----------------------------------------------------------------------------------


def normalize(values: Any) -> pa.Array:
    """Text form used to compare cells with raw identifiers: whitespace-trimmed and lower-cased (Arrow)."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(list(values), type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    return pc.utf8_lower(pc.utf8_trim_whitespace(arr))


def hash_values(values: Any) -> np.ndarray:
    """64-bit hashes of the normalized, non-empty values (:func:`text_hashes` of Arrow-normalized text)."""
    return _hash_normalized(normalize(values))


def _hash_normalized(text: pa.Array) -> np.ndarray:
    return text_hashes(text.filter(pc.and_(pc.is_valid(text), pc.not_equal(text, ""))))


#: splitmix64's finalizer constants (a bijection of 64-bit words) and the chain's start.
_MIX_1, _MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_CHAIN_START, _LENGTH_MULTIPLIER = np.uint64(0x243F6A8885A308D3), np.uint64(0x9E3779B97F4A7C15)
_ZERO_BYTE = pa.scalar(b"\x00", pa.large_binary())
_NO_BYTES = pa.scalar(b"", pa.large_binary())


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, element-wise: a bijection of uint64 (in place where numpy allows)."""
    x ^= x >> np.uint64(30)
    x *= _MIX_1
    x ^= x >> np.uint64(27)
    x *= _MIX_2
    x ^= x >> np.uint64(31)
    return x


#: Strings longer than this (bytes) are hashed one by one (8-byte BLAKE2b): the word fold of
#: :func:`text_hashes` takes a pass per word of a batch's longest string, which one long cell would make slow.
LONG_TEXT_BYTES = 256


def text_hashes(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each string's UTF-8 bytes (no nulls: the callers drop them), on Arrow's buffers.

    Up to :data:`LONG_TEXT_BYTES` bytes (identifiers, e-mail addresses, categories: no Python object per
    value, ~2x faster than pandas' SipHash over Python strings): the bytes as little-endian 8-byte words, the
    last one zero-padded, folded as ``h = mix(START ^ length * K)``, then ``h = mix(h ^ word)`` per word, with
    ``mix`` splitmix64's finalizer. Longer strings: 8 bytes of BLAKE2b. Which of the two applies depends on the
    string alone, so equal strings always get equal hashes and the scan cannot miss a raw value because of
    the hash. A collision can only add a false finding (the run fails, nothing leaks): ~2^-64 per pair of
    values nobody crafted; the fold is not collision-resistant against crafted input (as pandas' SipHash with
    its public key was not), and whoever can craft raw values can fail the run more simply (an e-mail address
    in any column). Deterministic: the same in every process and module copy, as raw values' and output
    cells' hashes must be.
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if not len(text):
        return np.empty(0, dtype=np.uint64)
    raw = pc.cast(text, pa.large_binary())
    lengths = pc.binary_length(raw).to_numpy()
    long = lengths > LONG_TEXT_BYTES
    if not long.any():
        return _folded(raw, lengths)
    out = np.empty(len(raw), dtype=np.uint64)
    short = np.flatnonzero(~long)
    if len(short):
        out[short] = _folded(raw.take(pa.array(short)), lengths[short])
    rows = np.flatnonzero(long)
    digests = (
        hashlib.blake2b(v, digest_size=8, person=b"pii-scan").digest() for v in raw.take(pa.array(rows)).to_pylist()
    )
    out[rows] = np.frombuffer(b"".join(digests), dtype="<u8")
    return out


def _folded(raw: pa.Array, lengths: np.ndarray) -> np.ndarray:
    """The word fold of :func:`text_hashes` over a ``large_binary`` array (``lengths``: its byte lengths)."""
    n = len(raw)
    if not n:
        return np.empty(0, dtype=np.uint64)
    # Zero bytes up to a whole word: the padded strings lie back to back, each a whole number of words.
    pad = pa.array((-lengths) & 7, pa.int64())
    padded = pc.binary_join_element_wise(raw, pc.binary_repeat(_ZERO_BYTE, pad), _NO_BYTES)
    ends = np.frombuffer(padded.buffers()[1], dtype=np.int64)[padded.offset : padded.offset + n + 1]
    data = padded.buffers()[2]  # None when every string is empty (no words to fold)
    size = int(ends[-1] - ends[0]) // 8
    words = np.frombuffer(
        data if data is not None else b"", dtype="<u8", count=size, offset=int(ends[0]) if size else 0
    )
    first = (ends[:-1] - ends[0]) // 8
    count = np.diff(ends) // 8
    with np.errstate(over="ignore"):
        h = _mix(_CHAIN_START ^ lengths.astype(np.uint64) * _LENGTH_MULTIPLIER)
        for k in range(int(count.max())):  # at most LONG_TEXT_BYTES / 8 passes
            rows = np.flatnonzero(count > k) if k >= count.min() else slice(None)
            h[rows] = _mix(h[rows] ^ words[first[rows] + k])
    return h


def identifier_columns(contract: DataContract) -> list[str]:
    """The raw columns whose values must never appear in clear: ``id`` and ``direct_identifier``."""
    return contract.names("id", "direct_identifier")


def raw_identifiers(input_dir: Path, contract: DataContract) -> tuple[dict[str, np.ndarray], bool]:
    """Column -> sorted hashes of that column's values in every raw file under ``input_dir``, and whether
    any of those values is itself token-shaped (then token cells must be compared too)."""
    names = identifier_columns(contract)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    shaped = False
    for path in list_input_files(input_dir):
        table = _read_columns(path, names)
        for name in names:
            if name in table.column_names:
                column = table.column(name)
                parts[name].append(hash_values(column))
                shaped = shaped or bool(pc.any(pc.match_substring_regex(normalize(column), TOKEN_RE.pattern)).as_py())
    # Sorted (duplicates kept: sorting is cheaper than np.unique and binary search does not mind them).
    hashes = {n: np.sort(np.concatenate(p)) if p else np.empty(0, dtype=np.uint64) for n, p in parts.items()}
    return hashes, shaped


#: Rows per record batch when scanning a parquet output (the scan's unit of memory).
SCAN_BATCH_ROWS = 65_536
#: pyarrow's default CSV null spellings: what :func:`_read_columns` reads as missing.
_CSV_DEFAULT_NULLS = pa.array(pacsv.ConvertOptions().null_values, type=pa.string())
_NULL_BYTES = max(len(v.encode("utf-8")) for v in pacsv.ConvertOptions().null_values)


class IdentifierHashes:
    """:func:`raw_identifiers` gathered from the record batches the streaming step reads anyway.

    The step hands every raw batch (:meth:`add`); :meth:`result` is then what :func:`raw_identifiers`
    would compute by reading the input folder again, without that second read. Only where the batch
    holds the file's text: parquet columns as stored, CSV columns read as strings (a CSV column typed on
    read, e.g. an ``int`` id, makes the result unusable and :func:`verify_outputs` reads the files).
    """

    def __init__(self, contract: DataContract) -> None:
        self.names = identifier_columns(contract)
        self.parts: dict[str, list[np.ndarray]] = {n: [] for n in self.names}
        self.shaped = False
        self.complete = True

    def add(self, table: pa.Table, csv: bool) -> None:
        """One raw record batch (``csv``: read from a CSV file)."""
        if not self.complete:  # the result cannot be used anyway
            return
        for name in self.names:
            if name not in table.column_names:
                continue
            column = table.column(name)
            if csv:
                if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                    self.complete = False
                    continue
                # The step's reader knows fewer null spellings than pyarrow's default reader (all of them
                # at most _NULL_BYTES long: look them up only if such short values occur).
                if pc.any(pc.less_equal(pc.binary_length(column), _NULL_BYTES)).as_py():
                    column = column.filter(pc.invert(pc.is_in(column, value_set=_CSV_DEFAULT_NULLS)))
            text = normalize(column)
            self.parts[name].append(_hash_normalized(text))
            if not self.shaped:
                shaped = text.filter(pc.equal(pc.binary_length(text), 32))  # TOKEN_RE: 32 characters
                self.shaped = bool(pc.any(pc.match_substring_regex(shaped, TOKEN_RE.pattern)).as_py())

    def result(self) -> tuple[dict[str, np.ndarray], bool] | None:
        """``(hashes, any token-shaped)`` as :func:`raw_identifiers` returns them; None if incomplete."""
        if not self.complete:
            return None
        hashes = {}
        for name in self.names:  # one array per column, sorted in place; the parts are let go
            parts = self.parts.pop(name, [])
            hashes[name] = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
            del parts
            hashes[name].sort()
        self.complete = False  # the parts are gone: a second call must not return partial hashes
        return hashes, self.shaped


def raw_identifier_hashes(input_dir: Path, contract: DataContract) -> dict[str, np.ndarray]:
    """Column -> sorted hashes of the raw identifier values (see :func:`raw_identifiers`)."""
    return raw_identifiers(input_dir, contract)[0]


def _read_columns(path: Path, names: list[str]) -> pa.Table:
    if path.name.lower().endswith((".parquet", ".pq")):
        present = set(pq.read_schema(path).names)
        return pq.read_table(path, columns=[n for n in names if n in present])
    header = pacsv.open_csv(path).schema.names
    wanted = [n for n in names if n in header]
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=wanted, column_types=dict.fromkeys(wanted, pa.string()), strings_can_be_null=True
        ),
    )


# --- scanning --------------------------------------------------------------------------------------


class Scanner:
    """Scans files for raw identifiers (``identifiers``: column -> hashes) and PII-shaped strings."""

    def __init__(
        self,
        identifiers: Mapping[str, np.ndarray],
        token_columns: Iterable[str] = (),
        *,
        compare_tokens: bool = False,
    ) -> None:
        """``identifiers``: column -> sorted hashes; ``compare_tokens``: compare token-shaped cells with them
        too (needed only if some raw identifier is itself token-shaped, e.g. 32-hex UUIDs)."""
        # Sorted copies only where needed (at 10M rows a copy of the hashes is 80 MB per column).
        self.identifiers = {k: v if _is_sorted(v) else np.sort(v) for k, v in identifiers.items() if len(v)}
        self.token_columns = frozenset(token_columns)
        self.compare_tokens = compare_tokens
        self.report = ScanReport(identifier_values=sum(len(v) for v in self.identifiers.values()))

    def scan(self, path: Path, name: str) -> None:
        """Scan one file (``name``: how the report names it, e.g. ``train/part-algo-1.parquet``)."""
        lower = path.name.lower()
        self.report.files += 1
        if lower.endswith((".parquet", ".pq")):
            parquet = pq.ParquetFile(path)  # row batches: memory does not grow with the file
            schema = parquet.schema_arrow
            batches = parquet.iter_batches(batch_size=SCAN_BATCH_ROWS)
            self._tables((pa.Table.from_batches([b], schema=schema) for b in batches), name)
        elif lower.endswith(".csv"):
            self._table(pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)), name)
        elif lower.endswith(".jsonl"):
            strings: dict[str, list[str]] = {}
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.strip():
                    self.report.rows += 1
                    _collect(_loads(line), "$", strings)
            self._strings(strings, name)
        else:
            strings = {}
            _collect(_loads(path.read_text(encoding="utf-8", errors="replace")), "$", strings)
            self._strings(strings, name)

    def _tables(self, tables: Iterable[pa.Table], name: str) -> None:
        """:meth:`_table` of each part of one file; a detector's counts of the parts add up to one finding."""
        start = len(self.report.findings)
        columns: list[str] = []
        for table in tables:
            columns = columns or table.column_names
            self._table(table, name)
        merged: dict[tuple[str, str, str], int] = {}
        for f in self.report.findings[start:]:
            key = (f.file, f.column, f.detector)
            merged[key] = merged.get(key, 0) + f.count
        # In the order one read of the whole file reports them: by column, then as _table checks.
        idents = [f"identifier:{i}" for i in self.identifiers]

        def order(key: tuple[str, str, str]) -> tuple[int, int, int, str]:
            column, detector = key[1], key[2]
            rank = {"untokenized": 0, "card": 1}.get(detector, 3)
            rank = 2 if detector in idents else rank
            return (columns.index(column), rank, idents.index(detector) if rank == 2 else 0, detector)

        self.report.findings[start:] = [Finding(*key, merged[key]) for key in sorted(merged, key=order)]

    def _table(self, table: pa.Table, name: str) -> None:
        """Every column of a parquet/CSV table, in Arrow (no per-cell Python objects for token columns)."""
        self.report.rows += table.num_rows
        self.report.cells += table.num_rows * table.num_columns
        for column in table.column_names:
            values = table.column(column)
            if pa.types.is_dictionary(values.type):
                values = pc.cast(values, values.type.value_type)
            values = values.drop_null()
            kind = values.type
            shaped = None
            if column in self.token_columns:
                shaped = pc.match_substring_regex(pc.cast(values, pa.string()), TOKEN_RE.pattern)
                self._add(name, column, "untokenized", len(values) - int(pc.sum(shaped).as_py() or 0))
            if pa.types.is_integer(kind):
                big = values.filter(pc.greater_equal(pc.abs(pc.cast(values, pa.int64())), 10**12))
                self._add(name, column, "card", sum(luhn_valid(str(abs(int(v)))) for v in big.to_pylist()))
            elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
                self._text(values, name, column, shaped)

    def _strings(self, strings: Mapping[str, list[str]], name: str) -> None:
        for where, values in strings.items():
            self.report.cells += len(values)
            self._text(pa.chunked_array([pa.array(values, type=pa.string())]), name, where)

    def _text(self, values: pa.ChunkedArray, name: str, column: str, shaped: Any = None) -> None:
        """Identifier matches and shape detectors over the distinct non-null strings of one column.

        ``shaped``: which of ``values`` are token-shaped, if already known (a token column's check).
        """
        if not len(values):
            return
        # A 32-hex token matches no shape detector (no '@', no separator, digits inside a word) and equals
        # a raw identifier only if raw identifiers are token-shaped. A token column (a distinct token per
        # row) drops its tokens before counting; any other column is counted first and its few distinct
        # values are tested for the token shape (one regex per distinct value, not per cell).
        if not self.compare_tokens and shaped is not None:
            values = values.filter(pc.invert(shaped))
            if not len(values):
                return
        counted = pc.value_counts(values)
        text = counted.field("values")
        counts = counted.field("counts").to_numpy(zero_copy_only=False)
        candidates = pc.invert(pc.match_substring_regex(text, TOKEN_RE.pattern)).to_numpy(zero_copy_only=False)
        if not self.compare_tokens and not candidates.all():  # tokens are compared with nothing: drop them
            text, counts = text.filter(pa.array(candidates)), counts[candidates]
            candidates = np.ones(len(counts), dtype=bool)
        if self.identifiers:
            # Each distinct cell once: normalize, hash, binary-search the sorted raw hashes.
            normalized = normalize(text)
            hashes = text_hashes(normalized)
            empty = pc.equal(normalized, "").to_numpy(zero_copy_only=False)
            for ident, known in self.identifiers.items():
                hit = _member(hashes, known) & ~empty
                self._add(name, column, f"identifier:{ident}", int(counts[hit].sum()))
        uniques = text.to_pylist()
        hits: dict[str, int] = {}
        for i in np.flatnonzero(candidates):
            for detector in shape_findings(uniques[i]):
                hits[detector] = hits.get(detector, 0) + int(counts[i])
        for detector, count in sorted(hits.items()):
            self._add(name, column, detector, count)

    def _add(self, file: str, column: str, detector: str, count: int) -> None:
        if count:
            self.report.findings.append(Finding(file, column, detector, int(count)))


def _is_sorted(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1]))


def _member(hashes: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``hashes`` found in the sorted unique array ``known`` (binary search; no per-call re-sort)."""
    idx = np.searchsorted(known, hashes)
    idx[idx == len(known)] = 0
    return known[idx] == hashes


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON: scan it as one string


def _collect(value: Any, where: str, out: dict[str, list[str]]) -> None:
    """String leaves and keys of a JSON document, grouped by their path (list indexes as ``[]``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            out.setdefault(f"{where}.<keys>", []).append(str(key))
            _collect(item, f"{where}.{key}" if len(where) < 200 else where, out)
    elif isinstance(value, list):
        for item in value:
            _collect(item, f"{where}[]", out)
    elif isinstance(value, str):
        out.setdefault(where, []).append(value)


def iter_files(root: Path, channels: Iterable[str] | None = None) -> Iterator[tuple[Path, str]]:
    """``(path, name relative to root)`` of the scannable files under ``root`` (or its ``channels``)."""
    tops = [root / c for c in channels] if channels is not None else [root]
    for top in tops:
        if not top.exists():
            continue
        paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in paths:
            if path.name.lower().endswith(SCANNED_SUFFIXES):
                yield path, path.relative_to(root).as_posix()


def scan_paths(
    files: Iterable[tuple[Path, str]],
    identifiers: Mapping[str, np.ndarray],
    token_columns: Iterable[str] = (),
    *,
    compare_tokens: bool = False,
) -> ScanReport:
    """Scan ``files`` (``(path, reported name)``) against the raw ``identifiers`` hashes."""
    started = time.perf_counter()
    scanner = Scanner(identifiers, token_columns, compare_tokens=compare_tokens)
    try:
        for path, name in files:
            scanner.scan(path, name)
    finally:
        shape_findings.cache_clear()  # the cached texts may be PII: they live no longer than the scan
    scanner.report.seconds = time.perf_counter() - started
    return scanner.report


def verify_outputs(
    input_dir: Path,
    output_dir: Path,
    contract: DataContract,
    host: str,
    identifiers: tuple[dict[str, np.ndarray], bool] | None = None,
) -> dict[str, Any]:
    """The job's gate: scan the outputs against the raw input; on a finding withhold the curated outputs.

    ``identifiers``: :func:`raw_identifiers` of ``input_dir`` if already known (:class:`IdentifierHashes`
    of the step's own read); else the input files are read here. Writes ``status/pii-scan.json`` and
    ``status/pii-scan-<host>.json`` and returns their content.
    """
    started = time.perf_counter()
    hashes, compare_tokens = identifiers if identifiers is not None else raw_identifiers(input_dir, contract)
    files = [(p, n) for p, n in iter_files(output_dir, SCANNED_CHANNELS) if not p.name.startswith("pii-scan")]
    report = scan_paths(files, hashes, token_columns=contract.names("id"), compare_tokens=compare_tokens)
    report.seconds = time.perf_counter() - started
    status = {**report.to_dict(), "host": host}
    if not report.passed:
        withheld = []
        for channel in WITHHELD_CHANNELS:
            for path, name in iter_files(output_dir, [channel]):
                path.unlink()
                withheld.append(name)
        # A status file with a finding is replaced by this report (its content must not be uploaded).
        for finding in report.findings:
            if finding.file.startswith("status/"):
                (output_dir / finding.file).write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
        status["withheld_files"] = sorted(set(withheld))
        status["summary"] += ". Nothing was written to the features or artifacts zones: fix the data contract"
        status["summary"] += " (declare the column direct_identifier or id) and land the batch again"
    text = json.dumps(status, indent=2, sort_keys=True) + "\n"
    folder = output_dir / "status"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATUS_FILE).write_text(text, encoding="utf-8")
    (folder / f"pii-scan-{host}.json").write_text(text, encoding="utf-8")
    return status
