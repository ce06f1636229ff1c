"""Streaming preprocessing (record batches) and the v2 token construction.

GIVEN input larger than one record batch (tiny block sizes force several batches and an uneven tail),
WHEN preprocess runs, THEN it writes exactly what one whole-file batch would, a contract failure in the
middle of the input holds the whole batch (nothing half-written), and tokens match committed vectors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import streaming
from contract import load_contract
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from features import (
    _CMAC_KEY_LABEL,
    TOKEN_VERSION,
    CmacTokenizer,
    HmacTokenizer,
    curated_versions,
    token_for,
    tokenizer,
)
from preprocess import CuratedWriter, preprocess
from tabular_helpers import CONTRACTS, PII_KEY

from flywheel.datasets import write_churn_csv

CHURN = CONTRACTS / "churn.json"
SPLITS = ("train", "validation", "test")
KEY = PII_KEY.encode()
VECTOR_KEY = b"flywheel-token-test-vector-key-0123456789"
# (id, v1 token, v2 token) under VECTOR_KEY: a changed construction must change its version, not these.
VECTORS = [
    ("C000000001", "1fd6d1acd1a32f2cccb4df6c08dec8bd", "60a025a051b29790b8914d7f8ebcd7eb"),
    ("", "485e2931cc626b41967c08a2a6b33a5b", "79da75410b2731842402391c37e69cf0"),
    ("Zoë-Ñ 42", "6dc5a520ac48f9e7f31ec0afc88ac129", "aba7c2fe956b74a1a70128f4cd3cb505"),
    ("x" * 16, "d6c01b4b0464679befc79e1adb9f91b3", "1eeb1b08b2321e26a023ab69331fbfbb"),
    ("customer-" + "0" * 26 + "42", "6d510013cc9c7b6b1a301de58097cd5f", "0c4fccccc6c7053fad2c4ce12d53f3f8"),
    ("12345", "46108e43300816405cb7cc66576e0861", "27cfdc909638dceb8d2dfd826f080cd5"),
]


@pytest.fixture(scope="module")
def contract():
    return load_contract(CHURN)


def _run(raw: Path, out: Path, contract, **kw) -> dict:
    return preprocess(raw, out, contract, KEY, "algo-1", ["algo-1"], **kw)


def _rows(out: Path) -> pd.DataFrame:
    parts = [pd.read_parquet(out / s).assign(split=s) for s in SPLITS if (out / s).exists()]
    return pd.concat(parts, ignore_index=True).sort_values("customer_id").reset_index(drop=True)


# --- tokens ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "v1", "v2"), VECTORS)
def test_committed_token_vectors(value: str, v1: str, v2: str) -> None:
    assert token_for(VECTOR_KEY, value, 1) == v1
    assert token_for(VECTOR_KEY, value, 2) == v2
    assert hmac.new(VECTOR_KEY, value.encode(), hashlib.sha256).hexdigest()[:32] == v1  # v1 is plain HMAC


def test_v2_is_aes_cmac_of_the_derived_key_for_every_length_and_path() -> None:
    aes_key = hmac.new(KEY, _CMAC_KEY_LABEL, hashlib.sha256).digest()

    def reference(text: str) -> str:
        mac = cmac.CMAC(algorithms.AES(aes_key))
        mac.update(text.encode("utf-8"))
        return mac.finalize().hex()

    rng = random.Random(7)
    values = ["", "a", "b" * 15, "c" * 16, "d" * 17, "é" * 8, "f" * 32, "g" * 33]
    values += ["".join(rng.choice("az09é€-") for _ in range(rng.randint(0, 40))) for _ in range(60)]
    expected = [reference(v) for v in values]
    tok = CmacTokenizer(KEY)
    assert tok.tokens(values) == expected  # mixed lengths: one CBC chain per block count
    assert tok.tokens_arrow(pa.array([*values, None])).to_pylist() == [*expected, None]
    assert tok.tokens_arrow(pa.array(values).slice(5, 20)).to_pylist() == expected[5:25]  # offset buffers
    same_length = [f"C{i:09d}" for i in range(50)]  # the fixed-width fast path
    assert tok.tokens_arrow(pa.array(same_length)).to_pylist() == [reference(v) for v in same_length]
    assert tok.tokens_arrow(pa.array([7, None, 42])).to_pylist() == [reference("7"), None, reference("42")]
    assert tok.tokens([None, "a"]) == [None, reference("a")]


def test_tokens_are_keyed_and_versions_are_unrelated() -> None:
    ids = [f"C{i:09d}" for i in range(200)]
    a = set(CmacTokenizer(KEY).tokens(ids))
    assert len(a) == 200
    assert not a & set(CmacTokenizer(KEY + b"!").tokens(ids))
    assert not a & set(HmacTokenizer(KEY).tokens(ids))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        CmacTokenizer(b"short")
    with pytest.raises(ValueError, match="unknown token version 3"):
        tokenizer(KEY, 3)


# --- streaming ---------------------------------------------------------------------------------------


def test_many_record_batches_give_the_output_of_one(tmp_path: Path, contract) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 800, seed=11)
    write_churn_csv(raw / "b.csv", 233, seed=12)  # a second file, its own uneven tail
    whole = _run(raw, tmp_path / "whole", contract, block_size=64 << 20)
    seen: list[int] = []
    original = streaming.check_table

    def counting(table, *args):
        seen.append(table.num_rows)
        return original(table, *args)

    streaming.check_table = counting
    try:
        batched = _run(raw, tmp_path / "batched", contract, block_size=8 << 10)
    finally:
        streaming.check_table = original
    assert len(seen) > 10 and len(set(seen)) > 1 and sum(seen) == 1033  # many batches, uneven tails
    assert batched["splits"] == whole["splits"] and batched["rows"] == whole["rows"] == 1033
    pd.testing.assert_frame_equal(_rows(tmp_path / "whole"), _rows(tmp_path / "batched"))
    stats = [json.loads((tmp_path / r / "baseline" / "stats-algo-1.json").read_text()) for r in ("whole", "batched")]
    assert stats[0]["rows"] == stats[1]["rows"] == whole["splits"]["train"]
    for name, col in stats[0]["columns"].items():
        other = stats[1]["columns"][name]
        assert col["count"] == other["count"] and col["nulls"] == other["nulls"], name
        if col["kind"] == "numeric":
            assert col["sketch"] == other["sketch"] and col["min"] == other["min"] and col["max"] == other["max"]
            assert col["mean"] == pytest.approx(other["mean"], rel=1e-9)
            assert col["m2"] == pytest.approx(other["m2"], rel=1e-6)
        else:
            assert col["categories"] == other["categories"], name
    assert not list(tmp_path.glob("*/.staging-*"))  # the staging folder is gone after commit


def test_parquet_input_streams_in_row_batches(tmp_path: Path, contract) -> None:
    write_churn_csv(tmp_path / "csv" / "a.csv", 700, seed=13)
    _run(tmp_path / "csv", tmp_path / "from-csv", contract)
    raw = tmp_path / "raw"
    raw.mkdir()
    text = {"postcode": pa.string(), "phone": pa.string()}
    table = pacsv.read_csv(tmp_path / "csv" / "a.csv", convert_options=pacsv.ConvertOptions(column_types=text))
    pq.write_table(table, raw / "a.parquet")
    status = _run(raw, tmp_path / "from-parquet", contract, batch_rows=97)
    assert status["passed"] and status["rows"] == 700
    pd.testing.assert_frame_equal(_rows(tmp_path / "from-csv"), _rows(tmp_path / "from-parquet"))


def _write_with_bad_rows(path: Path, rows: int, bad: dict[int, tuple[str, str]], seed: int) -> None:
    write_churn_csv(path, rows, seed=seed)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for row, (column, value) in bad.items():
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def test_a_record_batch_failing_mid_input_holds_the_whole_batch(tmp_path: Path, contract) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 300, seed=14)  # clean, written to staging before the failure is seen
    bad_rows = {350: ("payment_method", "bitcoin"), 555: ("payment_method", "cash")}
    _write_with_bad_rows(raw / "b.csv", 600, bad_rows, seed=15)
    out = tmp_path / "out"
    status = _run(raw, out, contract, block_size=8 << 10)
    assert status["passed"] is False
    (failure,) = status["failures"]
    assert failure["check"] == "allowed" and failure["file"] == "b.csv"
    # merged over record batches: one failure, the file's row numbers, the total in the message
    assert failure["failure_count"] == 2 and failure["examples"] == [350, 555]
    assert failure["example_values"] == ["bitcoin", "cash"]
    assert ": 2 row(s) " in failure["message"]
    assert status["quarantined_files"] == ["b.csv"]
    # nothing half-written: no split, no statistics, no staging folder
    assert sorted(p.name for p in out.iterdir()) == ["quarantine", "status"]


def test_a_value_that_breaks_the_typed_read_mid_file_is_found_by_row(tmp_path: Path, contract) -> None:
    raw = tmp_path / "raw"
    _write_with_bad_rows(raw / "a.csv", 600, {10: ("tenure_months", "1.0"), 500: ("tenure_months", "ten")}, 16)
    out = tmp_path / "out"
    status = _run(raw, out, contract, block_size=8 << 10)
    assert status["passed"] is False
    (failure,) = status["failures"]
    # "1.0" is an int (as in the whole-file read); "ten" is not, found at its row after the typed read broke
    assert (failure["check"], failure["column"], failure["examples"]) == ("dtype", "tenure_months", [500])
    assert not (out / "train").exists()


def test_a_coercible_value_after_the_typed_read_broke_still_writes_every_row(tmp_path: Path, contract) -> None:
    raw = tmp_path / "raw"
    _write_with_bad_rows(raw / "a.csv", 600, {500: ("tenure_months", "12.0")}, seed=17)
    status = _run(raw, tmp_path / "out", contract, block_size=8 << 10)
    assert status["passed"] is True and status["rows"] == 600
    rows = _rows(tmp_path / "out")
    assert len(rows) == 600 and rows["customer_id"].is_unique  # no batch lost or written twice


def test_an_error_while_writing_leaves_nothing_behind(tmp_path: Path, contract, monkeypatch) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 600, seed=18)
    calls = {"n": 0}
    original = CuratedWriter.write

    def failing(self, raw_batch, frame):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        original(self, raw_batch, frame)

    monkeypatch.setattr(CuratedWriter, "write", failing)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        _run(raw, out, contract, block_size=8 << 10)
    assert calls["n"] == 3
    assert not out.exists() or not any(out.rglob("*"))  # staged splits removed, nothing committed


def test_memory_does_not_grow_with_rows(tmp_path: Path, contract) -> None:
    """The writer holds no rows: what it keeps between batches is counts and mergeable statistics."""
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 1200, seed=19)
    sizes = []
    original = CuratedWriter.write

    def measuring(self, raw_batch, frame):
        original(self, raw_batch, frame)
        sizes.append(len(json.dumps(self.stats)))

    CuratedWriter.write = measuring  # type: ignore[method-assign]
    try:
        _run(raw, tmp_path / "out", contract, block_size=8 << 10)
    finally:
        CuratedWriter.write = original  # type: ignore[method-assign]
    assert len(sizes) > 10
    # Bounded: sketch buckets and category counts. Statistics that held rows would double over the second half
    # (as many rows again); these grow ~1.27x there, still meeting categories (postcode prefixes) at 1,200 rows,
    # and one batch more or less at the midpoint moved that to 1.31x: 1.5 tells the two apart with room.
    assert max(sizes[len(sizes) // 2 :]) < 1.5 * sizes[len(sizes) // 2]


def test_versions_are_recorded_with_the_curated_data(tmp_path: Path, contract) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 400, seed=20)
    _run(raw, tmp_path / "out", contract)
    assert curated_versions(tmp_path / "out" / "train") == {"token_version": TOKEN_VERSION, "split_version": 2}
    # lineage / erasure: a subject's token under the recorded version finds its row
    subject = pd.read_csv(raw / "a.csv", dtype=str)["customer_id"].iloc[17]
    token = token_for(KEY, subject, curated_versions(tmp_path / "out" / "train")["token_version"])
    assert (_rows(tmp_path / "out")["customer_id"] == token).sum() == 1
    pq.write_table(pa.table({"x": np.arange(3)}), tmp_path / "out" / "train" / "old.parquet")
    with pytest.raises(ValueError, match="mix token_versions"):
        curated_versions(tmp_path / "out" / "train")


def test_after_a_failing_file_later_files_are_validated_but_not_written(tmp_path: Path, contract, monkeypatch) -> None:
    raw = tmp_path / "raw"
    _write_with_bad_rows(raw / "a.csv", 300, {5: ("payment_method", "bitcoin")}, seed=21)
    _write_with_bad_rows(raw / "b.csv", 300, {250: ("tenure_months", "-3")}, seed=22)  # below min 0
    write_churn_csv(raw / "c.csv", 300, seed=23)
    written: list[int] = []
    original = CuratedWriter.write

    def recording(self, raw_batch, frame):
        written.append(len(frame))
        original(self, raw_batch, frame)

    monkeypatch.setattr(CuratedWriter, "write", recording)
    out = tmp_path / "out"
    status = _run(raw, out, contract, block_size=8 << 10)
    assert not written  # the first record batch already failed: nothing pseudonymized or written after it
    assert [(f["file"], f["check"]) for f in status["failures"]] == [("a.csv", "allowed"), ("b.csv", "min")]
    assert status["quarantined_files"] == ["a.csv", "b.csv"] and status["rows"] == 900
    assert sorted(p.name for p in out.iterdir()) == ["quarantine", "status"]
