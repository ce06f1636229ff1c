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
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from baseline import host_statistics
from contract import DataContract, load_contract
from features import MIN_PII_KEY_BYTES, pseudonymize
from pii_scan import verify_outputs
from validation import ValidationResult, list_input_files, validate_files

LOG = logging.getLogger("flywheel.preprocess")
PII_KEY_ENV = "FLYWHEEL_PII_KEY"
SPLITS = ("train", "validation", "test")
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
    """Split index per row: 0 train, 1 validation, 2 test.

    Rows are ordered by a seeded hash of their ``id`` columns (of all feature/target values when the
    contract has no id) and cut at the contract fractions, within each class for classification
    (exactly stratified). Because the order comes from the row itself, a customer keeps its split from
    one batch to the next, and sharded input changes only the cut points of each shard.
    """
    key_cols = contract.names("id") or contract.names("feature", "quasi_identifier", "target")
    h = row_hash(frame, key_cols, contract.split.seed)
    out = np.zeros(len(frame), dtype=np.int8)
    if contract.objective == "regression":
        groups = [np.arange(len(frame))]
    else:
        codes, _ = pd.factorize(frame[contract.target])
        groups = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)] if len(codes) else []
    for idx in groups:
        order = idx[np.lexsort((idx, h[idx]))]  # ties (duplicate rows) by position
        n_test = round(len(idx) * contract.split.test)
        n_val = round(len(idx) * contract.split.validation)
        out[order[:n_test]] = 2
        out[order[n_test : n_test + n_val]] = 1
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


def preprocess(
    input_dir: Path, output_dir: Path, contract: DataContract, key: bytes | None, host: str, hosts: list[str]
) -> dict[str, Any]:
    """Run the step on one host's files; returns the status written to ``status/validation.json``."""
    multi_host = len(hosts) > 1
    files = list_input_files(input_dir)
    LOG.info("host %s: %d input file(s) under %s", host, len(files), input_dir)
    result = validate_files(files, contract, root=input_dir, hosts=len(hosts))
    if result.passed and not files:  # an empty shard of a sharded batch: nothing to do on this host
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

    rows, summary = result.rows, result.summary()
    frames = [f.frame for f in result.files if f.frame is not None and len(f.frame)]
    raw = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    for f in result.files:
        f.frame = None  # drop the per-file copies of the raw batch (identifiers included) early
    del frames
    split = assign_splits(raw, contract)
    curated = pseudonymize(raw, contract, key)
    del raw
    table = pa.Table.from_pandas(curated, preserve_index=False)  # convert once, filter per split
    # Tokens are unique per row: a dictionary page would only be built and thrown away.
    dictionary = [n for n in table.column_names if n not in contract.names("id")]
    counts = {}
    for i, name in enumerate(SPLITS):
        mask = split == i
        counts[name] = int(mask.sum())
        if counts[name]:
            path = output_dir / name / f"part-{host}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.filter(pa.array(mask)), path, use_dictionary=dictionary)
    train_rows = curated[split == 0]
    write_json(output_dir / "baseline" / f"stats-{host}.json", host_statistics(train_rows, contract, host))
    status = {
        "passed": True,
        "host": host,
        "rows": rows,
        "files": len(result.files),
        "splits": counts,
        "failures": [],
        "summary": f"{summary}: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
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
        host, hosts = host_info(args.resource_config)
    except (ConfigurationError, ValueError, OSError) as exc:
        print(f"preprocess: configuration error: {exc}", file=sys.stderr)
        return 2
    preprocess(Path(args.input_dir), Path(args.output_dir), contract, key, host, hosts)
    # Verified pseudonymization (pii_scan.py): before upload, so a finding withholds the curated outputs.
    verify_outputs(Path(args.input_dir), Path(args.output_dir), contract, host)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
