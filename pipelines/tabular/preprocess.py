"""Preprocessing step: validate a raw batch against its data contract, pseudonymize it, split it.

SageMaker Processing contract (see README.md)::

    python3 preprocess.py --contract PATH --input-dir DIR --output-dir DIR
                          [--pii-key-file PATH] [--resource-config PATH]
                          [--input-uri S3_URI --allowed-input-prefix S3_PREFIX]

Writes under ``--output-dir`` one folder per output channel: ``train/``, ``validation/``, ``test/``
(curated parquet, ``part-<host>.parquet``), ``baseline/`` (``stats-<host>.json``), ``quarantine/`` (failing
raw files copied unchanged + ``report.json``) and ``status/validation.json``. A batch that breaks its
contract is *not* an error of the job (exit code 0, so that SageMaker uploads the quarantine and status
outputs); the pipeline's condition step reads ``status/validation.json`` (``passed``). Configuration
errors (no PII key, unreadable contract) exit non-zero, and so does a batch whose ``--input-uri`` (the
pipeline's ``InputDataUri``) lies outside ``--allowed-input-prefix`` (the team's ``incoming/`` prefix,
fixed at synth): the step refuses to treat anything else of the raw zone — the team's PII key folder,
another team's data — as a batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import shutil
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from baseline import host_statistics, merge_column, table_statistics
from contract import DataContract, load_contract
from features import (
    CURATED_SPLIT_VERSION_KEY,
    CURATED_TOKEN_VERSION_KEY,
    MIN_PII_KEY_BYTES,
    TOKEN_VERSION,
    CmacTokenizer,
    group_columns,
    pseudonymize,
    serving_columns,
)
from pii_scan import IdentifierHashes, verify_outputs
from streaming import BLOCK_SIZE, PARQUET_BATCH_ROWS, scan_file
from validation import PARQUET_SUFFIXES, ValidationResult, batch_failures, list_input_files

LOG = logging.getLogger("flywheel.preprocess")
PII_KEY_ENV = "FLYWHEEL_PII_KEY"
SPLITS = ("train", "validation", "test")
#: Bump when :func:`assign_splits` sends rows to other splits; recorded in the status and the curated data.
SPLIT_VERSION = 2
#: Record batches queued for the writer thread.
WRITE_AHEAD = 2
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class ConfigurationError(Exception):
    """A problem with the job's configuration (not with the data): the job must fail."""


# --- configuration -----------------------------------------------------------------------------------


def load_pii_key(key_file: str | None, env: Mapping[str, str]) -> bytes | None:
    """The tokenization key from ``key_file`` (preferred) or ``$FLYWHEEL_PII_KEY``; None if neither."""
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise ConfigurationError(f"--pii-key-file {key_file} does not exist")
        key = path.read_bytes().strip()
    elif env.get(PII_KEY_ENV):
        key = env[PII_KEY_ENV].strip().encode("utf-8")
    else:
        return None
    if len(key) < MIN_PII_KEY_BYTES:
        raise ConfigurationError(
            f"the PII key must be at least {MIN_PII_KEY_BYTES} bytes, got {len(key)}: generate one with "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return key


def host_info(resource_config: str | Path) -> tuple[str, list[str]]:
    """``(current_host, hosts)`` from SageMaker's resourceconfig.json; a missing file means one host."""
    path = Path(resource_config)
    if not path.is_file():
        return "algo-1", ["algo-1"]
    data = json.loads(path.read_text(encoding="utf-8"))
    return str(data["current_host"]), [str(h) for h in data.get("hosts", [data["current_host"]])]


# --- split -------------------------------------------------------------------------------------------


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer (vectorized; uint64 arithmetic wraps by design)."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _string_hash(values: pd.Series) -> np.ndarray:
    """FNV-1a over the UTF-8 bytes of each value (vectorized over rows via the Arrow buffers)."""
    arr = pa.array(values.astype(object).where(values.notna(), None), type=pa.large_string())
    arr = arr.fill_null("\x00<null>")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    h = np.full(len(arr), 0xCBF29CE484222325, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(int(lengths.max()) if len(lengths) else 0):
            live = lengths > j
            byte = data[np.minimum(starts + j, len(data) - 1)].astype(np.uint64)
            h = np.where(live, (h ^ byte) * np.uint64(0x100000001B3), h)
        return _mix(h ^ lengths.astype(np.uint64))


def _column_hash(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        secs = values.astype("datetime64[s]").to_numpy(dtype="int64", na_value=np.iinfo(np.int64).min)
        return _mix(secs.view(np.uint64))
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        nums = values.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
        nums = np.where(np.isnan(nums), np.inf, nums) + 0.0  # one NaN pattern; -0.0 == 0.0
        return _mix(nums.view(np.uint64))
    return _string_hash(values)


def row_hash(frame: pd.DataFrame, columns: Sequence[str], seed: int) -> np.ndarray:
    """A seeded 64-bit hash per row of ``columns``: stable across processes, shards and versions."""
    h = _mix(np.full(len(frame), seed, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    with np.errstate(over="ignore"):
        for i, name in enumerate(columns):
            h = _mix(h ^ (_column_hash(frame[name]) + np.uint64(i + 1)))
    return h


def assign_splits(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    """Split index per row: 0 train, 1 validation, 2 test (split version :data:`SPLIT_VERSION`).

    A row's split is a function of the row alone: the seeded hash of its ``id`` columns (of all
    feature/target values when the contract has no id), read as a number in [0, 1), against the
    contract fractions (test first, then validation). So a customer keeps its split from one batch to
    the next and across shards and record batches, and the split streams (no pass over the whole
    batch). The hash is independent of the class, so every class is split in the contract's
    proportions up to sampling noise (binomial: +-0.5 % of a split at 100k rows); version 1 cut a
    whole-batch hash order per class, which needed the whole batch in memory.
    """
    key_cols = contract.names("id") or contract.names("feature", "quasi_identifier", "target")
    h = row_hash(frame, key_cols, contract.split.seed)
    u = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53  # the top 53 bits, exactly, as a double
    out = np.zeros(len(frame), dtype=np.int8)
    out[u < contract.split.test + contract.split.validation] = 1
    out[u < contract.split.test] = 2
    return out


# --- outputs -----------------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, NaN refused) creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def quarantine(result: ValidationResult, output_dir: Path, host: str, multi_host: bool) -> list[str]:
    """Copy the failing raw files unchanged into ``quarantine/`` and write the report next to them."""
    qdir = output_dir / "quarantine"
    copied = []
    for f in result.failing_files:
        dest = qdir / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.path, dest)  # bytes only: the raw file itself is never touched
        copied.append(f.name)
    report = {**result.report(), "host": host, "quarantined_files": copied}
    write_json(qdir / "report.json", report)
    if multi_host:
        write_json(qdir / f"report-{host}.json", report)
    return copied


def write_status(output_dir: Path, status: dict[str, Any], host: str) -> None:
    """``status/validation.json`` and the per-host ``status/validation-<host>.json``.

    The pipeline's contract check reads the per-host files (one property file per host), because with
    several hosts sharing the output prefix ``validation.json`` is last-writer-wins.
    """
    write_json(output_dir / "status" / "validation.json", status)
    write_json(output_dir / "status" / f"validation-{host}.json", status)


def curated_schema(contract: DataContract) -> pa.Schema:
    """The Arrow schema of the curated splits (the same for every record batch, shard and run).

    Token and text columns are strings, ints ``int64`` (nullable), dates ``timestamp[ms]``; the schema
    metadata records the token and split constructions (:func:`features.curated_versions` reads them).
    """
    fields = []
    for name in contract.names("id"):
        fields.append(pa.field(name, pa.string()))
    for sc in serving_columns(contract):
        spec = contract.column(sc.source)
        if spec.role == "quasi_identifier":
            fields.append(pa.field(sc.name, pa.int64() if spec.generalize == "year" else pa.string()))
        else:
            fields.append(pa.field(sc.name, _ARROW_DTYPES[spec.dtype]))
    for name in [*group_columns(contract), contract.target]:
        fields.append(pa.field(name, _ARROW_DTYPES[contract.column(name).dtype]))
    meta = {CURATED_TOKEN_VERSION_KEY: str(TOKEN_VERSION), CURATED_SPLIT_VERSION_KEY: str(SPLIT_VERSION)}
    return pa.schema(fields, metadata=meta)


_ARROW_DTYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.timestamp("ms"),
    "str": pa.string(),
}


class CuratedWriter:
    """Pseudonymize, split and write record batches; statistics of the training rows as they pass.

    Everything goes to a staging folder (``.staging-<host>``, hidden: no reader lists it) and moves into
    the output channels only in :meth:`commit`, so a batch that fails later (a bad record batch in the
    middle of the last file, ``min_rows``) or a killed job leaves no half-written split behind:
    :meth:`discard` removes the staging folder.
    """

    def __init__(self, output_dir: Path, contract: DataContract, key: bytes | None, host: str) -> None:
        self.output_dir, self.contract, self.host = output_dir, contract, host
        self.stage = output_dir / f".staging-{host}"
        shutil.rmtree(self.stage, ignore_errors=True)  # what a killed run left
        self.schema = curated_schema(contract)
        self.ids = contract.names("id")
        self.tokenizer = CmacTokenizer(key) if self.ids and key is not None else None
        if self.ids and self.tokenizer is None:
            raise ValueError("a PII key is required to tokenize id columns: " + ", ".join(self.ids))
        # Tokens are unique per row: a dictionary page would only be built and thrown away.
        self.dictionary = [n for n in self.schema.names if n not in self.ids]
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.counts = dict.fromkeys(SPLITS, 0)
        self.stats: dict[str, Any] | None = None
        # Parquet encoding and compression release the GIL: a writer thread overlaps them with the next
        # batch's work; the bounded queue keeps at most WRITE_AHEAD batches in flight.
        self._pending: queue.Queue[tuple[str, pa.Table] | None] = queue.Queue(maxsize=WRITE_AHEAD)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def write(self, raw: pa.Table, frame: pd.DataFrame) -> None:
        """One validated record batch (``raw``: as read; ``frame``: its coerced contract columns)."""
        split = assign_splits(frame, self.contract)
        tokens = {}
        for name in self.ids:
            assert self.tokenizer is not None
            arr = pa.array(frame[name], from_pandas=True)  # the coerced value (an int id: its decimal text)
            tokens[name] = pd.Series(pd.arrays.ArrowExtensionArray(self.tokenizer.tokens_arrow(arr)), index=frame.index)
        curated = (
            pseudonymize(frame, self.contract, None, tokens=tokens)
            if self.ids
            else pseudonymize(frame, self.contract, None)
        )
        table = pa.Table.from_pandas(curated, schema=self.schema, preserve_index=False)
        for i, name in enumerate(SPLITS):
            mask = split == i
            n = int(mask.sum())
            if not n:
                continue
            self.counts[name] += n
            self._submit(name, table.filter(pa.array(mask)))

    def _submit(self, name: str, table: pa.Table) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="flywheel-writer", daemon=True)
            self._thread.start()
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._pending.put((name, table), timeout=0.1)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        while (item := self._pending.get()) is not None:
            if self._error is not None:
                continue  # keep draining so that the producer never blocks
            name, table = item
            try:
                if name not in self.writers:
                    path = self.stage / name / f"part-{self.host}.parquet"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self.writers[name] = pq.ParquetWriter(path, self.schema, use_dictionary=self.dictionary)
                self.writers[name].write_table(table)
                if name == "train":  # statistics of the training rows, from Arrow (mostly without the GIL)
                    part = table_statistics(table, self.contract, self.host)
                    self.stats = part if self.stats is None else merge_host_statistics(self.stats, part)
            except BaseException as exc:
                self._error = exc

    def close(self) -> None:
        """Finish the pending writes and close the parquet files (idempotent); re-raises a write error."""
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join()
            self._thread = None
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def discard(self) -> None:
        """Drop everything staged."""
        try:
            self.close()
        except Exception:  # noqa: S110 - the output is dropped anyway; the first error is already raised
            pass
        finally:
            shutil.rmtree(self.stage, ignore_errors=True)

    def commit(self) -> dict[str, int]:
        """Move the staged splits into the output channels, write the statistics; the split counts."""
        self.close()
        for name in SPLITS:
            staged = self.stage / name / f"part-{self.host}.parquet"
            if staged.exists():
                (self.output_dir / name).mkdir(parents=True, exist_ok=True)
                os.replace(staged, self.output_dir / name / staged.name)
        stats = self.stats or host_statistics(_empty_curated(self.contract), self.contract, self.host)
        write_json(self.output_dir / "baseline" / f"stats-{self.host}.json", stats)
        shutil.rmtree(self.stage, ignore_errors=True)
        return dict(self.counts)


def _empty_curated(contract: DataContract) -> pd.DataFrame:
    return curated_schema(contract).empty_table().to_pandas()


def merge_host_statistics(seen: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Statistics of two record batches of one host as one (exact: :func:`baseline.merge_column`)."""
    columns = {name: merge_column([col, more["columns"][name]]) for name, col in seen["columns"].items()}
    return {**seen, "rows": seen["rows"] + more["rows"], "columns": columns}


def preprocess(
    input_dir: Path,
    output_dir: Path,
    contract: DataContract,
    key: bytes | None,
    host: str,
    hosts: list[str],
    *,
    block_size: int = BLOCK_SIZE,
    batch_rows: int = PARQUET_BATCH_ROWS,
    identifiers: IdentifierHashes | None = None,
) -> dict[str, Any]:
    """Run the step on one host's files, one record batch at a time; returns the status it writes.

    ``identifiers``, if given, receives every raw batch that passed (the PII scan's raw identifier
    hashes, gathered from this read instead of a second one; used only when the whole batch passed).

    Peak memory is a few record batches (``block_size`` bytes of CSV, ``batch_rows`` rows of parquet:
    one being worked on, :data:`streaming.READ_AHEAD` read ahead, :data:`WRITE_AHEAD` being written),
    whatever the number of rows.
    """
    multi_host = len(hosts) > 1
    paths = list_input_files(input_dir)
    LOG.info("host %s: %d input file(s) under %s", host, len(paths), input_dir)
    writer = CuratedWriter(output_dir, contract, key, host)
    clean = True

    csv = False

    def sink(raw: pa.Table, frame: pd.DataFrame) -> None:
        if clean:  # once any record batch failed, the whole batch is held: validate on, write nothing
            writer.write(raw, frame)
            if identifiers is not None:
                identifiers.add(raw, csv)

    files = []
    try:
        for path in paths:
            csv = not path.name.lower().endswith(PARQUET_SUFFIXES)
            name = path.relative_to(input_dir).as_posix()
            files.append(scan_file(path, name, contract, sink, block_size=block_size, batch_rows=batch_rows))
            clean = clean and not files[-1].failures
        failures = [f for r in files for f in r.failures] + batch_failures(files, contract, hosts=len(hosts))
        result = ValidationResult(files, failures)
        if not result.passed:
            writer.discard()
    except BaseException:
        writer.discard()
        raise
    if result.passed and not paths:  # an empty shard of a sharded batch: nothing to do on this host
        writer.discard()
        status = {"passed": True, "host": host, "rows": 0, "files": 0, "failures": [], "summary": "empty shard"}
        write_status(output_dir, status, host)
        return status
    if not result.passed:
        copied = quarantine(result, output_dir, host, multi_host)
        status = {
            "passed": False,
            "host": host,
            "rows": result.rows,
            "failures": [f.to_dict() for f in result.failures],
            "quarantined_files": copied,
            "summary": result.summary(),
        }
        write_status(output_dir, status, host)
        LOG.warning("%s", status["summary"])
        return status
    counts = writer.commit()
    status = {
        "passed": True,
        "host": host,
        "rows": result.rows,
        "files": len(files),
        "splits": counts,
        "token_version": TOKEN_VERSION,
        "split_version": SPLIT_VERSION,
        "failures": [],
        "summary": f"{result.summary()}: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
    }
    write_status(output_dir, status, host)
    LOG.info("%s", status["summary"])
    return status


def check_input_uri(uri: str, allowed_prefix: str) -> None:
    """Refuse an input URI outside ``allowed_prefix`` (ConfigurationError naming both).

    The URI must start with the prefix, name something below it and hold no ``.``/``..`` segment.
    """
    if not allowed_prefix.startswith("s3://") or not allowed_prefix.endswith("/"):
        raise ConfigurationError(f"allowed input prefix {allowed_prefix!r} is not an s3:// prefix ending in '/'")
    rest = uri[len(allowed_prefix) :] if uri.startswith(allowed_prefix) else None
    segments = (rest or "").split("/")
    if not rest or any(part in (".", "..") for part in segments):
        raise ConfigurationError(
            f"InputDataUri {uri!r} is outside this team's incoming prefix {allowed_prefix!r}: a pipeline "
            "reads batches landed there only"
        )


# --- CLI ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The step's command line (paths only; defaults follow the SageMaker processing layout)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--contract", required=True, help="path of contract.json")
    p.add_argument("--input-dir", required=True, help="folder with the raw CSV/parquet files")
    p.add_argument("--output-dir", required=True, help="folder that receives the output channels")
    p.add_argument("--pii-key-file", default=None, help=f"tokenization key file (else ${PII_KEY_ENV})")
    p.add_argument("--resource-config", default="/opt/ml/config/resourceconfig.json")
    p.add_argument("--input-uri", default=None, help="the S3 URI the batch was read from (InputDataUri)")
    p.add_argument("--allowed-input-prefix", default=None, help="the only S3 prefix a batch may come from")
    args = p.parse_args(argv)
    if (args.input_uri is None) != (args.allowed_input_prefix is None):
        p.error("--input-uri and --allowed-input-prefix go together")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        if args.allowed_input_prefix is not None:
            check_input_uri(args.input_uri, args.allowed_input_prefix)
        contract = load_contract(args.contract)
        key = load_pii_key(args.pii_key_file, os.environ)
        if contract.names("id") and key is None:
            raise ConfigurationError(
                f"the contract has id columns ({', '.join(contract.names('id'))}) and no PII key was "
                f"given: pass --pii-key-file or set ${PII_KEY_ENV}"
            )
        if contract.names("id") and key is not None:
            CmacTokenizer(key)  # fails here, before any output, if the image lacks `cryptography`
        host, hosts = host_info(args.resource_config)
    except (ConfigurationError, ValueError, OSError, ImportError) as exc:
        print(f"preprocess: configuration error: {exc}", file=sys.stderr)
        return 2
    identifiers = IdentifierHashes(contract)
    status = preprocess(
        Path(args.input_dir), Path(args.output_dir), contract, key, host, hosts, identifiers=identifiers
    )
    # Verified pseudonymization (pii_scan.py): before upload, so a finding withholds the curated outputs.
    # The raw identifiers come from the step's own read when every batch passed (else: read again).
    known = identifiers.result() if status["passed"] else None
    verify_outputs(Path(args.input_dir), Path(args.output_dir), contract, host, known)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
