"""Prepare step: a raw batch to score → the model's scoring input (id token + curated serving columns).

SageMaker Processing contract (see README.md)::

    python3 prepare.py --contract PATH --input-dir DIR --output-dir DIR --pii-key-file PATH
                       [--input-uri S3_URI --allowed-input-prefix S3_PREFIX]

Reads every ``*.csv`` / ``*.parquet`` file under ``--input-dir`` (``_SUCCESS`` and other ``_``/``.``
markers are skipped), and writes under ``--output-dir``:

* ``scoring-input/<file>.csv`` — one line per scored row, no header: the HMAC token of the contract's id
  column (:class:`features.HmacTokenizer`: the ``tabular`` template's function and the team's key, so
  a token here equals the token in the training data), then the model's serving columns in the order
  the model expects (:func:`features.serving_columns`: features, and quasi-identifiers generalized by
  :func:`features.generalize` exactly as for training). Direct identifiers, ignored columns, the raw id
  and a target column (if the batch carries one) are dropped: the scoring input holds no PII.
* ``manifest/status.json`` — ``passed`` (false when a file is unreadable or lacks a column the model
  needs: the pipeline's ``InputCheck`` then fails the run with ``summary``), ``rows_in``,
  ``rows_prepared``, ``rows_rejected`` and ``rejected`` (reason → count; a row without an id cannot be
  keyed and is not scored), ``files``.

A rejected batch is not an error of the job (exit 0, so that the manifest is uploaded); a configuration
problem (no PII key, unreadable contract, an ``--input-uri`` outside ``--allowed-input-prefix``) exits 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from contract import DataContract, load_contract
from features import MIN_PII_KEY_BYTES, HmacTokenizer, generalize, serving_columns

LOG = logging.getLogger("flywheel.prepare")
DATA_SUFFIXES = (".csv", ".parquet")
STATUS_FILE = "status.json"
#: Generalizations of a date column (``features.generalize``).
DATE_RULES = ("age_band", "year")
#: Counted in ``rejected`` but scored anyway (values scored as missing): not rejected rows.
SCORED_ANYWAY = "(scored as missing)"


class ConfigurationError(Exception):
    """A problem with the job's configuration (not with the data): the job must fail."""


def check_input_uri(uri: str, allowed_prefix: str) -> None:
    """Refuse an input URI outside ``allowed_prefix`` (ConfigurationError naming both).

    The URI must start with the prefix, name something below it and hold no ``.``/``..`` segment.
    """
    if not allowed_prefix.startswith("s3://") or not allowed_prefix.endswith("/"):
        raise ConfigurationError(f"allowed input prefix {allowed_prefix!r} is not an s3:// prefix ending in '/'")
    rest = uri[len(allowed_prefix) :] if uri.startswith(allowed_prefix) else None
    if not rest or any(part in (".", "..") for part in rest.split("/")):
        raise ConfigurationError(
            f"InputDataUri {uri!r} is outside this team's scoring prefix {allowed_prefix!r}: the pipeline "
            "scores batches landed there only"
        )


def load_key(path: str) -> bytes:
    """The team's PII HMAC key (ConfigurationError if missing or too short)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError(f"--pii-key-file {path} does not exist")
    key = file.read_bytes().strip()
    if len(key) < MIN_PII_KEY_BYTES:
        raise ConfigurationError(f"the PII key must be at least {MIN_PII_KEY_BYTES} bytes, got {len(key)}")
    return key


def input_files(input_dir: Path) -> tuple[list[Path], list[str]]:
    """``(data files, unsupported files)`` under ``input_dir``, sorted; markers (``_*``, ``.*``) skipped."""
    files: list[Path] = []
    unsupported: list[Path] = []
    for path in sorted(p for p in input_dir.rglob("*") if p.is_file()):
        if path.name.startswith(("_", ".")):
            continue
        (files if path.suffix.lower() in DATA_SUFFIXES else unsupported).append(path)
    return files, [str(p.relative_to(input_dir)) for p in unsupported]


def read_frame(path: Path) -> pd.DataFrame:
    """A raw file as strings (``object``; empty fields are missing), whatever its format."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path).astype(object).where(lambda f: f.notna(), None)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]).astype(object)


def prepare_frame(
    frame: pd.DataFrame, contract: DataContract, tokenizer: HmacTokenizer
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``(scoring rows: token + serving columns, rejected reason → count)`` of one raw file's frame.

    Raises ValueError naming the missing columns when the frame lacks one the model needs.
    """
    id_column = contract.names("id")[0]
    columns = serving_columns(contract)
    needed = [id_column, *dict.fromkeys(sc.source for sc in columns)]
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    ids = frame[id_column]
    keep = ids.notna() & (ids.astype(str).str.strip() != "")
    rejected = {"missing id": int((~keep).sum())} if not keep.all() else {}
    rows = frame[keep]
    out: dict[str, Any] = {
        id_column: tokenizer.tokens(rows[id_column].astype(str).str.strip().tolist()),
    }
    for sc in columns:
        spec = contract.column(sc.source)
        values = rows[sc.source]
        if spec.role == "quasi_identifier":
            if spec.generalize in DATE_RULES:
                # A date that does not parse is scored as missing (the model handles missing values),
                # and counted: one bad value must not stop the batch.
                parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
                bad = int((parsed.isna() & values.notna()).sum())
                if bad:
                    rejected[f"invalid {sc.source} (scored as missing)"] = bad
                values = parsed
            out[sc.name] = generalize(values, spec, contract.reference_date)
        else:
            out[sc.name] = values
    return pd.DataFrame(out, index=rows.index), rejected


def prepare(input_dir: Path, output_dir: Path, contract: DataContract, key: bytes) -> dict[str, Any]:
    """Run the step; returns the status written to ``manifest/status.json``."""
    tokenizer = HmacTokenizer(key)
    files, unsupported = input_files(input_dir)
    target_dir = output_dir / "scoring-input"
    target_dir.mkdir(parents=True, exist_ok=True)
    rows_in = rows_prepared = 0
    rejected: dict[str, int] = {}
    problems: list[str] = [f"{name}: not a .csv or .parquet file" for name in unsupported]
    if not files and not problems:
        problems.append("the batch holds no .csv or .parquet file")
    written: list[str] = []
    for index, path in enumerate(files):
        name = str(path.relative_to(input_dir))
        try:
            frame = read_frame(path)
            prepared, file_rejected = prepare_frame(frame, contract, tokenizer)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        rows_in += len(frame)
        rows_prepared += len(prepared)
        for reason, count in file_rejected.items():
            rejected[reason] = rejected.get(reason, 0) + count
        if len(prepared):
            out_name = f"part-{index:05d}.csv"
            # No header, no index: one record per line, as the transform splits them (SplitType Line).
            prepared.to_csv(target_dir / out_name, header=False, index=False, quoting=csv.QUOTE_MINIMAL)
            written.append(out_name)
        del frame
    if not problems and rows_prepared == 0:
        problems.append(f"none of the {rows_in} row(s) can be scored: {_reasons(rejected) or 'empty files'}")
    rows_rejected = sum(count for reason, count in rejected.items() if not reason.endswith(SCORED_ANYWAY))
    passed = not problems
    summary = (
        f"{rows_prepared} of {rows_in} row(s) prepared from {len(files)} file(s)"
        + (f"; {_reasons(rejected)}" if rejected else "")
        if passed
        else "; ".join(problems)
    )
    status = {
        "passed": passed,
        "rows_in": rows_in,
        "rows_prepared": rows_prepared if passed else 0,
        "rows_rejected": rows_rejected,
        "rejected": rejected,
        "files": len(files),
        "written": written if passed else [],
        "problems": problems,
        "summary": summary,
    }
    if not passed:  # nothing of a rejected batch goes on to the model
        for name in written:
            (target_dir / name).unlink()
    manifest = output_dir / "manifest"
    manifest.mkdir(parents=True, exist_ok=True)
    (manifest / STATUS_FILE).write_text(json.dumps(status, indent=2, sort_keys=True), encoding="utf-8")
    (LOG.info if passed else LOG.warning)("%s", summary)
    return status


def _reasons(rejected: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(rejected.items()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The step's command line (paths only; defaults follow the SageMaker processing layout)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--contract", required=True, help="path of contract.json")
    p.add_argument("--input-dir", required=True, help="folder with the batch's CSV/parquet files")
    p.add_argument("--output-dir", required=True, help="folder that receives scoring-input/ and manifest/")
    p.add_argument("--pii-key-file", required=True, help="the team's PII HMAC key file")
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
        if len(contract.names("id")) != 1:
            raise ConfigurationError("the contract must have exactly one id column to key predictions")
        key = load_key(args.pii_key_file)
    except (ConfigurationError, ValueError, OSError) as exc:
        print(f"prepare: configuration error: {exc}", file=sys.stderr)
        return 2
    prepare(Path(args.input_dir), Path(args.output_dir), contract, key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
