"""Validate raw batch files against the data contract and report failures without leaking identifiers.

The checks are vectorized numpy/pandas code rather than a pandera schema: the step then needs no
package beyond what the SageMaker framework containers ship (a job that must ``pip install`` cannot run
network-isolated in a VPC without a PyPI mirror), and the report format, the row indices and the
redaction of identifier values stay under our control.

Checks (the ``check`` field of a failure):

==================  =================================================================================
``no_input``        no CSV or parquet file under the input directory
``readable``        the file cannot be parsed (ragged CSV, corrupt parquet); parser text is redacted
``duplicate_column`` a column name appears twice in one file
``column_present``  a contract column is missing from the file
``unexpected_column`` the file has a column the contract does not name (it could be PII)
``dtype``           a value does not parse as the contract dtype (int, float, bool, ISO date)
``not_null``        a missing value in a column that is not ``nullable``
``min`` / ``max``   a numeric value outside the contract range
``allowed``         a value outside the contract's ``allowed`` set
``min_rows``        fewer rows than ``contract.min_rows`` in the whole batch seen by this host
==================  =================================================================================

Row indices are 0-based data rows of the file (the header is not a row). Offending values are shown only
for ``feature`` and ``target`` columns; identifier, quasi-identifier and unexpected columns are reported
by name, check, count and row index only.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from contract import ColumnSpec, DataContract
from features import parse_bool, typed_allowed

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2")
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_EXAMPLES = 5
_NULLS = ["", "NA", "N/A", "NULL", "null", "NaN", "nan"]
_VALUE_ROLES = ("feature", "target")  # roles whose offending values may appear in a report


@dataclass(frozen=True)
class Failure:
    """One failed check: where, what, how many, and a few example rows."""

    check: str
    column: str | None
    failure_count: int
    message: str
    file: str | None = None
    examples: list[int] = field(default_factory=list)
    # Offending values, only for feature/target columns (never identifiers or unexpected columns).
    example_values: list[Any] | None = None

    @property
    def hint(self) -> str:
        """What to change: the data or the contract (:data:`HINTS`)."""
        return HINTS.get(self.check, "fix the data or the data contract")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with its ``hint`` (``example_values`` omitted when redacted)."""
        out = asdict(self)
        if self.example_values is None:
            out.pop("example_values")
        out["hint"] = self.hint
        return out


#: Per check: how to fix the batch or the contract (shown next to each failure and in the summary).
HINTS: dict[str, str] = {
    "no_input": "land at least one CSV or parquet file in the batch folder",
    "readable": "re-export the file (consistent columns per row, UTF-8 CSV or valid parquet)",
    "header_row": "add a header row with the contract's column names as the first line",
    "duplicate_column": "rename or remove the repeated column in the file",
    "column_present": "add the column to the file, or remove it from the contract if the data no longer has it",
    "unexpected_column": "drop the column from the export, or declare it in the contract (role 'ignore' drops it)",
    "dtype": "fix the values, or change the column's dtype in the contract (int, float, str, bool, date)",
    "not_null": 'fill the missing values, or set "nullable": true on the column in the contract',
    "min": "fix the values, or lower the column's min in the contract if they are legitimate",
    "max": "fix the values, or raise the column's max in the contract if they are legitimate",
    "allowed": "fix the values, or add them to the column's allowed list in the contract (written as strings)",
    "min_rows": "land a larger batch, or lower min_rows in the contract",
}


@dataclass
class FileResult:
    """A validated file: its coerced frame (``None`` if unreadable) and its failures."""

    path: Path
    name: str
    frame: pd.DataFrame | None
    failures: list[Failure]

    @property
    def rows(self) -> int:
        """Number of data rows read (0 if unreadable)."""
        return 0 if self.frame is None else len(self.frame)


@dataclass
class ValidationResult:
    """The outcome for a whole batch (all files seen by one host)."""

    files: list[FileResult]
    failures: list[Failure]

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return not self.failures

    @property
    def rows(self) -> int:
        """Total rows over all readable files."""
        return sum(f.rows for f in self.files)

    @property
    def failing_files(self) -> list[FileResult]:
        """Files with at least one failure (every file when a batch-level check failed)."""
        if any(f.file is None for f in self.failures):
            return list(self.files)
        return [f for f in self.files if f.failures]

    def summary(self) -> str:
        """One-line human message naming the first failing column and check."""
        if self.passed:
            return f"validated {self.rows} rows from {len(self.files)} file(s)"
        first = self.failures[0]
        where = f" in {first.file}" if first.file else ""
        more = len(self.failures) - 1
        tail = f" (+{more} more failure{'s' if more > 1 else ''})" if more else ""
        shown = ""
        if first.example_values:
            values = list(dict.fromkeys(repr(v) for v in first.example_values))[:3]
            shown = f", e.g. {', '.join(values)}"
        return f"data contract violated: {first.message}{shown}{where}{tail}. Hint: {first.hint}"

    def report(self) -> dict[str, Any]:
        """Machine-readable report (``quarantine/report.json``)."""
        return {
            "passed": self.passed,
            "rows": self.rows,
            "files": [{"file": f.name, "rows": f.rows, "failures": len(f.failures)} for f in self.files],
            "failures": [f.to_dict() for f in self.failures],
            "summary": self.summary(),
        }


class ContractViolation(ValueError):
    """Raised by :func:`check_batch` when a batch fails its data contract."""

    def __init__(self, result: ValidationResult) -> None:
        super().__init__(result.summary())
        self.result = result


def list_input_files(input_dir: str | Path) -> list[Path]:
    """CSV and parquet files under ``input_dir`` (recursive, sorted; hidden and ``_*`` files skipped)."""
    root = Path(input_dir)
    if not root.is_dir():
        return []
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
        and p.name.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES)
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def read_table(path: Path, contract: DataContract) -> pa.Table:
    """Read one CSV (typed by the contract; everything else as text) or parquet file.

    CSV types are never inferred: inference looks at the first block only, and a later bad value
    would fail the whole read with the value in the error. Contract columns are read as their dtype,
    others as text; if that typed read fails, every column is re-read as text so that
    :func:`coerce_column` can point at the bad rows (the slow path runs only for bad files).
    """
    if path.name.lower().endswith(PARQUET_SUFFIXES):
        return pq.read_table(path)
    names = pacsv.open_csv(path, convert_options=_csv_options({})).schema.names
    typed = {c.name: _ARROW_TYPES[c.dtype] for c in contract.columns}
    types = {n: typed.get(n, pa.string()) for n in names}  # unexpected columns: text, never inferred
    try:
        return pacsv.read_csv(path, convert_options=_csv_options(types))
    except pa.ArrowInvalid:
        return pacsv.read_csv(path, convert_options=_csv_options(dict.fromkeys(names, pa.string())))


_ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "str": pa.string(),
}


def _csv_options(types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types=types, null_values=_NULLS, strings_can_be_null=True, quoted_strings_can_be_null=True
    )


def coerce_column(values: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, np.ndarray]:
    """The column in its canonical dtype, and a mask of present values that do not parse as the dtype.

    Canonical dtypes: int -> ``Int64``, float -> ``float64``, bool -> ``boolean``, date ->
    ``datetime64``, str -> text. Unparseable values become missing in the returned column.
    """
    present = values.notna().to_numpy()
    if spec.dtype == "str":
        if pd.api.types.is_string_dtype(values.dtype):
            return values, np.zeros(len(values), dtype=bool)
        return values.astype(object).where(present, None).map(_str_or_none), np.zeros(len(values), bool)
    if spec.dtype in ("int", "float") and isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu":
        # Typed read without nulls: nothing to parse (the common case, so keep it cheap).
        return values.astype("Int64" if spec.dtype == "int" else "float64"), np.zeros(len(values), dtype=bool)
    if spec.dtype in ("int", "float"):
        if pd.api.types.is_bool_dtype(values.dtype):
            nums = np.full(len(values), np.nan)
        else:
            nums = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        bad = present & ~np.isfinite(nums)
        if spec.dtype == "int":
            bad |= present & np.isfinite(nums) & (nums != np.round(nums))
        clean = np.where(bad, np.nan, nums)
        if spec.dtype == "int":
            return pd.Series(clean, index=values.index).astype("Int64"), bad
        return pd.Series(clean, index=values.index, dtype="float64"), bad
    if spec.dtype == "bool":
        if pd.api.types.is_bool_dtype(values.dtype):
            return values.astype("boolean"), np.zeros(len(values), dtype=bool)
        parsed = values.astype(object).where(present, None).map(_bool_or_nan)
        bad = present & parsed.isna().to_numpy()
        return parsed.astype("boolean"), bad
    # date: ISO ``YYYY-MM-DD`` text, or date/timestamp values from parquet
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values, np.zeros(len(values), dtype=bool)
    dates = pd.to_datetime(values.astype(object).where(present, None), errors="coerce", format="%Y-%m-%d")
    return dates, present & dates.isna().to_numpy()


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _bool_or_nan(value: Any) -> Any:
    if value is None:
        return None
    try:
        return parse_bool(value)
    except ValueError:
        return None


# What a real column header looks like. Anything else (an e-mail, a phone number, a name with a space,
# a number or a date) is probably the first data row of a file without a header: never echo it.
_HEADER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def safe_header(header: str, position: int) -> tuple[str, str]:
    """``(column, label)`` for reports that leave the raw zone: the header if it looks like a name.

    Reports, statuses, logs and the pipeline's failure message are outside the raw zone, so a header that
    may be a data value (a headerless CSV) is reported by position only (``#3``).
    """
    if _HEADER.match(header):
        return header, repr(header)
    column = f"#{position + 1}"
    return column, f"{column} (header not shown: it looks like data, not a column name)"


def check_file(path: Path, name: str, contract: DataContract) -> FileResult:
    """Read and validate one file; the returned frame holds the contract columns, coerced."""
    try:
        table = read_table(path, contract)
    except (pa.ArrowException, OSError, ValueError) as exc:
        msg = f"file cannot be read: {_redact_parser_error(exc)}"
        return FileResult(path, name, None, [Failure("readable", None, 1, msg, name)])
    return check_table(table, path, name, contract)


def check_table(table: pa.Table, path: Path, name: str, contract: DataContract) -> FileResult:
    """Validate a table read from ``path`` (a whole file, or one record batch of it when streaming)."""
    failures: list[Failure] = []
    names = table.column_names
    rows = table.num_rows
    if not set(names) & set(contract.names()):
        # Probably a CSV without a header row: its "headers" are the first record's values, so none of
        # them may be echoed into reports that leave the raw zone.
        msg = (
            f"none of the {len(names)} header fields is a contract column (a file without a header row?); "
            "header values are not shown"
        )
        return FileResult(path, name, None, [Failure("header_row", None, rows, msg, name)])
    dupes = sorted({n for n in names if names.count(n) > 1})
    for n in dupes:
        column, label = safe_header(n, names.index(n))
        failures.append(Failure("duplicate_column", column, rows, f"column {label} appears more than once", name))
    expected = set(contract.names())
    for n in dict.fromkeys(names):
        if n not in expected:
            column, label = safe_header(n, names.index(n))
            msg = f"column {label} is not in the data contract (unexpected_column; it could hold PII)"
            failures.append(Failure("unexpected_column", column, rows, msg, name))
    present_cols = set(names) - set(dupes)
    data: dict[str, pd.Series] = {}
    for spec in contract.columns:
        if spec.name not in present_cols:
            msg = f"column {spec.name!r} is missing (column_present)"
            failures.append(Failure("column_present", spec.name, rows, msg, name))
            continue
        raw = table.column(spec.name).to_pandas(date_as_object=False)
        coerced, bad = coerce_column(raw, spec)
        failures.extend(_value_failures(raw, coerced, bad, spec, name))
        data[spec.name] = coerced
    return FileResult(path, name, pd.DataFrame(data, index=pd.RangeIndex(rows)), failures)


def _value_failures(
    raw: pd.Series, coerced: pd.Series, bad_dtype: np.ndarray, spec: ColumnSpec, file: str
) -> list[Failure]:
    out: list[Failure] = []
    col = spec.name

    def add(check: str, mask: np.ndarray, what: str) -> None:
        count = int(mask.sum())
        if not count:
            return
        rows = np.flatnonzero(mask)[:MAX_EXAMPLES]
        values = [_jsonable(raw.iloc[i]) for i in rows] if spec.role in _VALUE_ROLES else None
        msg = f"column {col!r} failed check {check!r}: {count} row(s) {what}"
        out.append(Failure(check, col, count, msg, file, [int(i) for i in rows], values))

    add("dtype", bad_dtype, f"do not parse as {spec.dtype}")
    missing = raw.isna().to_numpy()
    if not spec.nullable:
        add("not_null", missing, "are empty in a non-nullable column")
    ok = ~missing & ~bad_dtype
    if spec.dtype in ("int", "float") and (spec.min is not None or spec.max is not None):
        nums = coerced.to_numpy(dtype="float64", na_value=np.nan)
        if spec.min is not None:
            add("min", ok & (nums < spec.min), f"are below min {spec.min:g}")
        if spec.max is not None:
            add("max", ok & (nums > spec.max), f"are above max {spec.max:g}")
    if spec.allowed is not None:
        allowed = typed_allowed(spec)
        outside = ok & ~coerced.isin(allowed).to_numpy(dtype=bool, na_value=False)
        add("allowed", outside, f"are not in allowed {allowed!r}"[:200])
    return out


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, int | float | bool):
        return value
    return str(value)[:80]


def _redact_parser_error(exc: Exception) -> str:
    """The parser's message without the row text it quotes (a raw row may hold PII)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r"(got \d+)\s*:.*", r"\1", text)
    text = re.sub(r"(invalid value)\s*'.*", r"\1", text)
    return text[:200]


def validate_files(
    paths: list[Path], contract: DataContract, root: str | Path | None = None, hosts: int = 1
) -> ValidationResult:
    """Validate every file, then the batch-level checks (``no_input``, ``min_rows``).

    With ``hosts`` > 1 (sharded input) a host only sees its shard: an empty shard is fine (the files went
    to other hosts) and ``min_rows`` applies as each host's share, ``ceil(min_rows / hosts)``, since no
    host sees the whole batch.
    """
    base = Path(root) if root is not None else None
    files = [check_file(p, p.relative_to(base).as_posix() if base else p.name, contract) for p in paths]
    return ValidationResult(files, [f for r in files for f in r.failures] + batch_failures(files, contract, hosts))


def batch_failures(files: list[FileResult], contract: DataContract, hosts: int = 1) -> list[Failure]:
    """The batch-level checks (``no_input``, ``min_rows``) over the validated files of one host."""
    failures: list[Failure] = []
    min_rows = -(-contract.min_rows // max(hosts, 1))
    if not files:
        if hosts == 1:
            failures.append(Failure("no_input", None, 0, "no CSV or parquet input files found"))
    elif all(r.frame is not None for r in files):  # row count unknown while a file is unreadable
        rows = sum(r.rows for r in files)
        if rows < min_rows:
            share = "" if hosts == 1 else f" (this host's share of {contract.min_rows} over {hosts} hosts)"
            msg = f"batch has {rows} rows, fewer than min_rows {min_rows}{share} (min_rows)"
            failures.append(Failure("min_rows", None, rows, msg))
    return failures


def check_batch(input_dir: str | Path, contract: DataContract) -> ValidationResult:
    """Library entry point: validate every file under ``input_dir``; raise :class:`ContractViolation`."""
    result = validate_files(list_input_files(input_dir), contract, root=input_dir)
    if not result.passed:
        raise ContractViolation(result)
    return result
