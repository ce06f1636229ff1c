"""The streaming step's fast paths compute exactly what the slower ones did.

GIVEN curated record batches (statistics) or raw record batches (the PII scan's identifier hashes),
WHEN the Arrow paths compute them (``baseline.table_statistics`` on the writer thread,
``pii_scan.IdentifierHashes`` from the step's own read), THEN the result equals the pandas statistics of
the same rows and the identifier hashes of a second read of the input folder, including nulls,
infinities, pyarrow-only null spellings and token-shaped identifiers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import streaming
from baseline import host_statistics, table_statistics
from contract import load_contract
from features import pseudonymize
from pii_scan import IdentifierHashes, raw_identifiers
from preprocess import curated_schema
from tabular_helpers import CONTRACTS, PII_KEY
from validation import check_file

from flywheel.datasets import write_churn_csv

KEY = PII_KEY.encode()
# The dtypes of the step's coerced frames (validation.coerce_column): nullable ints and booleans.
_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=_NULLABLE.get)


def _random_column(field: pa.Field, rows: int, rng: np.random.Generator) -> pa.Array:
    nulls = rng.random(rows) < 0.1
    kind = field.type
    if pa.types.is_string(kind):
        values = rng.choice(["a", "b", "1", "30-39", "90+", "x y", ""], rows).astype(object)
    elif pa.types.is_integer(kind):
        values = rng.integers(-3, 2030, rows)
    elif pa.types.is_floating(kind):
        values = rng.normal(0, 100, rows)
        values[rng.random(rows) < 0.05] = np.inf
        values[rng.random(rows) < 0.05] = -np.inf
        values[rng.random(rows) < 0.05] = 0.0
    elif pa.types.is_boolean(kind):
        values = rng.random(rows) < 0.5
    else:  # timestamp
        values = np.datetime64("2020-01-01") + rng.integers(0, 3000, rows).astype("timedelta64[D]")
        values = values.astype("datetime64[ms]")
    return pa.array(values, type=kind, mask=nulls)


@pytest.mark.parametrize("name", sorted(p.stem for p in CONTRACTS.glob("*.json")))
def test_arrow_statistics_equal_pandas_statistics_for_every_contract(name: str) -> None:
    contract = load_contract(CONTRACTS / f"{name}.json")
    schema = curated_schema(contract)
    rng = np.random.default_rng(7)
    table = pa.table([_random_column(f, 500, rng) for f in schema], schema=schema)
    features = {f.name for f in schema if pa.types.is_floating(f.type)} - {contract.target}
    if features:  # an infinite feature is an error of both (validation keeps them out of curated data)
        for function in (table_statistics, host_statistics):
            with pytest.raises(ValueError, match="cannot be read as numeric"):
                function(table if function is table_statistics else _frame(table), contract, "algo-1")
    # (An infinite regression target gives NaN moments either way, which no JSON document may hold.)
    floats = [pc.if_else(pc.is_inf(c), 1.5, c) if pa.types.is_floating(c.type) else c for c in table.columns]
    table = pa.table(floats, schema=schema)
    assert table_statistics(table, contract, "algo-1") == host_statistics(_frame(table), contract, "algo-1")
    empty = schema.empty_table()
    assert table_statistics(empty, contract, "algo-1") == host_statistics(_frame(empty), contract, "algo-1")


def test_arrow_statistics_equal_those_of_the_curated_frame(tmp_path: Path) -> None:
    """What the step did before: pandas statistics of the pseudonymized frame (not of a round trip)."""
    contract = load_contract(CONTRACTS / "churn.json")
    path = write_churn_csv(tmp_path / "a.csv", 1500, seed=31)
    result = check_file(path, "a.csv", contract)
    assert not result.failures and result.frame is not None
    curated = pseudonymize(result.frame, contract, KEY)
    table = pa.Table.from_pandas(curated, schema=curated_schema(contract), preserve_index=False)
    stats = table_statistics(table, contract, "algo-1")
    assert stats == host_statistics(curated, contract, "algo-1")
    assert stats["columns"]["paperless_billing"]["categories"].keys() == {"false", "true"}


def _streamed(raw: Path, contract, block_size: int = 4096) -> IdentifierHashes:
    collected = IdentifierHashes(contract)
    for path in sorted(raw.iterdir()):
        csv = path.suffix == ".csv"
        result = streaming.scan_file(
            path,
            path.name,
            contract,
            lambda t, _f, csv=csv: collected.add(t, csv),
            block_size=block_size,
            batch_rows=97,
        )
        assert not result.failures
    return collected


def _same(streamed: IdentifierHashes, raw: Path, contract) -> bool:
    """The streamed hashes equal a second read's; returns whether some identifier is token-shaped."""
    got = streamed.result()
    assert got is not None
    hashes, shaped = raw_identifiers(raw, contract)
    assert got[1] == shaped
    assert got[0].keys() == hashes.keys()
    for name in hashes:
        np.testing.assert_array_equal(got[0][name], hashes[name], err_msg=name)
    assert streamed.result() is None  # the parts were let go: no second, partial result
    return got[1]


def test_streamed_identifier_hashes_equal_a_second_read(tmp_path: Path) -> None:
    contract = load_contract(CONTRACTS / "churn.json")
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 700, seed=32)
    frame = pd.read_csv(raw / "a.csv", dtype=str, keep_default_na=False)
    # pyarrow's default reader (the second read) takes "#N/A", "n/a", "-nan" as missing; the step's does not.
    for row, value in enumerate(["#N/A", "n/a", "-nan", "N/a", "  Mixed.Case@Example.COM ", "", "NULL"]):
        frame.loc[row, "phone"] = value
    frame.loc[10, "name"] = "0123456789abcdef0123456789ABCDEF"  # token-shaped once lower-cased
    frame.to_csv(raw / "a.csv", index=False)
    write_churn_csv(raw / "b.csv", 150, seed=33)
    assert _same(_streamed(raw, contract), raw, contract) is True


def test_streamed_identifier_hashes_of_parquet_input(tmp_path: Path) -> None:
    contract = load_contract(CONTRACTS / "churn.json")
    write_churn_csv(tmp_path / "a.csv", 400, seed=34)
    raw = tmp_path / "raw"
    raw.mkdir()
    frame = pd.read_csv(tmp_path / "a.csv", dtype={"postcode": str, "phone": str})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), raw / "a.parquet")
    assert _same(_streamed(raw, contract), raw, contract) is False


def test_an_identifier_typed_on_read_falls_back_to_a_second_read(tmp_path: Path) -> None:
    """A CSV id typed as int lost its text ("007" -> 7): the streamed hashes are not used."""
    spec = json.loads((CONTRACTS / "churn.json").read_text())
    contract = load_contract(CONTRACTS / "churn.json")
    collected = IdentifierHashes(contract)
    collected.add(pa.table({"customer_id": pa.array([7, 8]), "name": pa.array(["a", "b"])}), csv=True)
    assert collected.result() is None
    collected = IdentifierHashes(contract)
    collected.add(pa.table({"customer_id": pa.array([7, 8])}), csv=False)  # parquet: read as stored either way
    assert collected.result() is not None
    assert spec["columns"][0]["role"] == "id"


def test_an_image_without_cryptography_fails_before_writing(tmp_path: Path, monkeypatch, capsys) -> None:
    import sys

    import preprocess

    write_churn_csv(tmp_path / "raw" / "a.csv", 50, seed=35)
    (tmp_path / "pii.key").write_text(PII_KEY)
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)  # import fails
    args = ["--contract", str(CONTRACTS / "churn.json"), "--input-dir", str(tmp_path / "raw")]
    args += ["--output-dir", str(tmp_path / "out"), "--pii-key-file", str(tmp_path / "pii.key")]
    args += ["--resource-config", str(tmp_path / "none")]
    assert preprocess.main(args) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "'cryptography' package" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_scan_reads_parquet_in_row_batches_and_counts_as_one_read(tmp_path: Path, monkeypatch) -> None:
    import pii_scan

    rows = 100
    table = pa.table(
        {
            "customer_id": ["0123456789abcdef0123456789abcdef"] * (rows - 3) + ["C1", "C2", "C3"],
            "note": [f"mail me at a{i}@example.com" if i % 9 == 0 else f"n{i}" for i in range(rows)],
            "leak": ["Jane Doe" if i % 13 == 0 else None for i in range(rows)],
            "card": [4111111111111111 if i % 31 == 0 else i for i in range(rows)],
        }
    )
    pq.write_table(table, tmp_path / "part.parquet", row_group_size=17)
    identifiers = {"name": pii_scan.hash_values(pa.array(["jane doe"]))}

    def scan() -> pii_scan.ScanReport:
        return pii_scan.scan_paths([(tmp_path / "part.parquet", "train/part.parquet")], identifiers, ["customer_id"])

    whole = scan()
    monkeypatch.setattr(pii_scan, "SCAN_BATCH_ROWS", 7)
    batched = scan()
    assert batched.findings == whole.findings and (batched.rows, batched.cells) == (whole.rows, whole.cells)
    counts = {(f.column, f.detector): f.count for f in batched.findings}
    assert counts == {
        ("customer_id", "untokenized"): 3,
        ("note", "email"): 12,
        ("leak", "identifier:name"): 8,
        ("card", "card"): 4,
    }
