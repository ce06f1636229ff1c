"""Data-contract checks (validation.py) on the committed samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from contract import ColumnSpec, load_contract
from tabular_helpers import CONTRACTS, FIXTURES
from validation import ContractViolation, check_batch, check_file, coerce_column, list_input_files, validate_files


def _text_frame(name: str) -> pd.DataFrame:
    """A committed sample with every cell as its exact text (so edits change only what they touch)."""
    return pd.read_csv(FIXTURES / f"{name}.csv", dtype=str, keep_default_na=False)


@pytest.mark.parametrize("name", ["churn", "diagnostics", "diabetes", "wine"])
def test_committed_samples_pass_their_contract(name: str) -> None:
    contract = load_contract(CONTRACTS / f"{name}.json")
    result = validate_files([FIXTURES / f"{name}.csv"], contract)
    assert result.passed, result.summary()
    assert result.rows == len(_text_frame(name))


def test_coerced_frame_has_canonical_dtypes(churn_contract) -> None:
    frame = check_file(FIXTURES / "churn.csv", "churn.csv", churn_contract).frame
    assert frame is not None
    assert str(frame["tenure_months"].dtype) == "Int64"
    assert frame["monthly_charges"].dtype == np.float64
    assert str(frame["paperless_billing"].dtype) == "boolean"
    assert pd.api.types.is_datetime64_any_dtype(frame["date_of_birth"])
    # Leading zeros survive: ZIP codes are text, never inferred as numbers.
    raw = _text_frame("churn")
    assert frame["postcode"].tolist() == raw["postcode"].tolist()
    assert raw["postcode"].str.startswith("0").any()


@pytest.mark.parametrize(
    ("dtype", "values", "bad"),
    [
        ("int", ["1", "2.0", "2.5", "x", None], [False, False, True, True, False]),
        ("float", ["1.5", "inf", "1e3", "abc", None], [False, True, False, True, False]),
        ("bool", ["true", "0", "yes", "perhaps", None], [False, False, False, True, False]),
        ("date", ["2020-02-29", "2021-02-29", "20/01/2020", None, "1999-12-31"], [False, True, True, False, False]),
        ("str", ["a", "1", None, "", "b"], [False] * 5),
    ],
)
def test_coerce_column_flags_unparseable_values(dtype: str, values: list, bad: list) -> None:
    spec = ColumnSpec(name="c", dtype=dtype)
    coerced, mask = coerce_column(pd.Series(values, dtype=object), spec)
    assert mask.tolist() == bad
    assert coerced.isna().to_numpy()[np.array(bad)].all()  # bad values become missing


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_failures_name_column_check_count_and_rows(tmp_path: Path, churn_contract) -> None:
    frame = _text_frame("churn")
    frame.loc[[3, 8, 20], "monthly_charges"] = "999.5"
    frame.loc[4, "contract_type"] = "weekly"
    frame.loc[[1, 2], "tenure_months"] = ""
    path = _write(frame, tmp_path / "bad.csv")
    result = validate_files([path], churn_contract, root=tmp_path)
    got = {(f.column, f.check): f for f in result.failures}
    assert set(got) == {("monthly_charges", "max"), ("contract_type", "allowed"), ("tenure_months", "not_null")}
    assert got[("monthly_charges", "max")].failure_count == 3
    assert got[("monthly_charges", "max")].examples == [3, 8, 20]
    assert got[("monthly_charges", "max")].example_values == [999.5, 999.5, 999.5]
    assert got[("contract_type", "allowed")].example_values == ["weekly"]
    assert got[("tenure_months", "not_null")].examples == [1, 2]
    assert all(f.file == "bad.csv" for f in result.failures)
    # The one-line summary names the first failure in contract order, and says there are more.
    assert "'tenure_months'" in result.summary() and "'not_null'" in result.summary()
    assert "+2 more failures" in result.summary()


def test_identifier_values_never_appear_in_failures(tmp_path: Path, churn_contract) -> None:
    frame = _text_frame("churn")
    frame.loc[6, "date_of_birth"] = "1985-13-45"  # a quasi-identifier with a bad value
    frame["ssn"] = [f"900-12-{i:04d}" for i in range(len(frame))]  # an unexpected column: maybe PII
    path = _write(frame, tmp_path / "bad.csv")
    result = validate_files([path], churn_contract, root=tmp_path)
    checks = {(f.column, f.check) for f in result.failures}
    assert checks == {("date_of_birth", "dtype"), ("ssn", "unexpected_column")}
    text = str(result.report())
    assert "1985-13-45" not in text
    assert "900-12-" not in text
    dob = next(f for f in result.failures if f.column == "date_of_birth")
    assert dob.examples == [6]
    assert dob.example_values is None and "example_values" not in dob.to_dict()


def test_typed_read_falls_back_when_a_later_block_breaks_the_type(tmp_path: Path, churn_contract) -> None:
    # Arrow infers types from the first block only; a bad value far down must still be found by row.
    frame = pd.concat([_text_frame("churn")] * 40, ignore_index=True)
    frame.loc[len(frame) - 2, "support_calls"] = "many"
    path = _write(frame, tmp_path / "big.csv")
    assert path.stat().st_size > 1_000_000
    result = validate_files([path], churn_contract)
    (failure,) = result.failures
    assert (failure.column, failure.check, failure.examples) == ("support_calls", "dtype", [len(frame) - 2])


def test_unreadable_csv_is_reported_without_its_content(tmp_path: Path, churn_contract) -> None:
    lines = (FIXTURES / "churn.csv").read_text().splitlines()
    lines[5] += ',"Secret Person","extra"'
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    result = validate_files([path], churn_contract)
    (failure,) = result.failures
    assert failure.check == "readable"
    assert "Secret Person" not in str(result.report())
    assert lines[5].split(",")[1] not in str(result.report())  # the row's name column


def test_missing_and_duplicate_columns(tmp_path: Path, churn_contract) -> None:
    frame = _text_frame("churn").drop(columns=["payment_method"])
    path = _write(frame, tmp_path / "missing.csv")
    result = validate_files([path], churn_contract)
    assert [(f.column, f.check) for f in result.failures] == [("payment_method", "column_present")]
    text = (FIXTURES / "churn.csv").read_text().splitlines()
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join(f"{line},{line.split(',')[7]}" for line in text) + "\n")  # tenure twice
    result = validate_files([dup], churn_contract)
    assert ("tenure_months", "duplicate_column") in {(f.column, f.check) for f in result.failures}


def test_batch_level_checks(tmp_path: Path, churn_contract) -> None:
    empty = validate_files([], churn_contract)
    assert [f.check for f in empty.failures] == ["no_input"]
    small = _write(_text_frame("churn").head(50), tmp_path / "small.csv")
    result = validate_files([small], churn_contract)
    assert [(f.check, f.failure_count) for f in result.failures] == [("min_rows", 50)]
    assert [f.name for f in result.failing_files] == ["small.csv"]
    # Two small files from the same host together reach min_rows.
    second = _write(_text_frame("churn").tail(250), tmp_path / "second.csv")
    assert validate_files([small, second], churn_contract).passed


def test_parquet_input_is_validated_like_csv(tmp_path: Path, churn_contract) -> None:
    frame = pd.read_csv(FIXTURES / "churn.csv", dtype={"postcode": str})
    frame.loc[0, "num_products"] = 99
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "batch.parquet")
    result = validate_files(list_input_files(tmp_path), churn_contract, root=tmp_path)
    assert [(f.column, f.check, f.examples) for f in result.failures] == [("num_products", "max", [0])]


def test_list_input_files_skips_hidden_and_marker_files(tmp_path: Path) -> None:
    for name in ("b.csv", "a/c.parquet", "_SUCCESS", ".hidden.csv", "_tmp/x.csv", "notes.txt", "d.csv.gz"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_input_files(tmp_path)] == [
        "a/c.parquet",
        "b.csv",
        "d.csv.gz",
    ]


def test_check_batch_raises_for_library_use(tmp_path: Path, churn_contract) -> None:
    frame = _text_frame("churn")
    frame.loc[0, "internet_service"] = "satellite"
    _write(frame, tmp_path / "bad.csv")
    with pytest.raises(ContractViolation, match="internet_service") as info:
        check_batch(tmp_path, churn_contract)
    assert info.value.result.failures[0].check == "allowed"
    good = tmp_path / "good"
    good.mkdir()
    _write(_text_frame("churn"), good / "ok.csv")
    assert check_batch(good, churn_contract).rows == 300


def test_headerless_csv_never_echoes_the_first_row(tmp_path: Path, churn_contract) -> None:
    """Without a header the first data row becomes the header: its values must not leave the raw zone."""
    frame = _text_frame("churn")
    path = tmp_path / "headerless.csv"
    frame.to_csv(path, index=False, header=False)
    first_row = [str(v) for v in frame.iloc[0].tolist()]
    result = validate_files([path], churn_contract, root=tmp_path)
    assert not result.passed
    text = json.dumps(result.report()) + result.summary()
    for value in first_row:
        # names, e-mails, phones, dates, ids (not booleans or bare numbers, which the report legitimately has)
        if len(value) > 3 and value.lower() not in ("true", "false") and not value.replace(".", "").isdigit():
            assert value not in text, f"{value!r} leaked into the report"
    assert [f.check for f in result.failures] == ["header_row"]


def test_data_like_extra_header_is_reported_by_position(tmp_path: Path, churn_contract) -> None:
    frame = _text_frame("churn")
    frame["jane.doe@example.com"] = "x"
    path = _write(frame, tmp_path / "bad.csv")
    result = validate_files([path], churn_contract, root=tmp_path)
    (failure,) = [f for f in result.failures if f.check == "unexpected_column"]
    assert failure.column == f"#{len(frame.columns)}"
    assert "jane.doe" not in json.dumps(result.report()) + result.summary()


def test_sharded_hosts_accept_an_empty_shard_and_check_their_share_of_min_rows(tmp_path: Path, churn_contract) -> None:
    assert validate_files([], churn_contract, hosts=3).passed  # files went to other hosts
    assert not validate_files([], churn_contract, hosts=1).passed  # a lone host with nothing is a failure
    small = _text_frame("churn").head(-(-churn_contract.min_rows // 3))
    path = _write(small, tmp_path / "part.csv")
    assert validate_files([path], churn_contract, root=tmp_path, hosts=3).passed
    assert not validate_files([path], churn_contract, root=tmp_path, hosts=1).passed
