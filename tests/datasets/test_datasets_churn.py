"""The synthetic churn generator: determinism, chunking, sharding, contract, signal."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from contract import load_contract
from validation import validate_files

from flywheel.datasets import (
    churn_frame,
    contract_path,
    iter_churn,
    iter_churn_tables,
    write_churn_csv,
    write_churn_shards,
)
from flywheel.datasets.churn import BLOCK_ROWS, COLUMNS


def test_same_seed_same_bytes_whatever_the_chunk_size(tmp_path: Path) -> None:
    n = 2 * BLOCK_ROWS + 123  # spans block boundaries and ends mid-block
    files = [write_churn_csv(tmp_path / f"c{c}.csv", n, seed=3, chunk_rows=c) for c in (1000, 7919, n, 10 * n)]
    data = [f.read_bytes() for f in files]
    assert all(d == data[0] for d in data[1:])
    assert data[0].count(b"\n") == n + 1
    assert write_churn_csv(tmp_path / "other.csv", n, seed=4).read_bytes() != data[0]


def test_rows_do_not_depend_on_the_total(tmp_path: Path) -> None:
    small = write_churn_csv(tmp_path / "small.csv", 10, seed=1).read_bytes()
    large = write_churn_csv(tmp_path / "large.csv", 5000, seed=1).read_bytes()
    assert large.startswith(small)


def test_shards_are_slices_of_the_single_file(tmp_path: Path) -> None:
    n = BLOCK_ROWS + 1001
    single = write_churn_csv(tmp_path / "single.csv", n, seed=9).read_bytes().split(b"\n", 1)
    shards = write_churn_shards(tmp_path / "shards", n, 3, seed=9, chunk_rows=500)
    assert [p.name for p in shards] == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    bodies = []
    for path in shards:
        header, body = path.read_bytes().split(b"\n", 1)
        assert header == single[0]
        bodies.append(body)
    assert b"".join(bodies) == single[1]


def test_chunks_have_the_requested_size() -> None:
    sizes = [t.num_rows for t in iter_churn_tables(2500, seed=0, chunk_rows=1000)]
    assert sizes == [1000, 1000, 500]
    frames = list(iter_churn(30, seed=0, chunk_rows=30))
    assert len(frames) == 1 and list(frames[0].columns) == list(COLUMNS)
    assert list(iter_churn_tables(0)) == []
    with pytest.raises(ValueError):
        next(iter_churn_tables(10, chunk_rows=0))


def test_memory_stays_bounded_by_a_chunk() -> None:
    # Arrow allocates outside tracemalloc's view: watch Arrow's own pool while streaming 20 chunks.
    gc.collect()
    start = pa.total_allocated_bytes()
    peak, total = 0, 0
    for table in iter_churn_tables(20 * BLOCK_ROWS, seed=2, chunk_rows=BLOCK_ROWS):
        total += table.nbytes
        peak = max(peak, pa.total_allocated_bytes() - start)
        del table
    assert total > 20_000_000
    assert peak < total / 5, (peak, total)


def test_zero_rows_gives_a_header_only_csv(tmp_path: Path) -> None:
    text = write_churn_csv(tmp_path / "empty.csv", 0).read_text()
    assert text.strip().split(",")[0] == '"customer_id"' and text.count("\n") == 1


def test_identifiers_look_real_and_ids_are_unique() -> None:
    frame = churn_frame(3 * BLOCK_ROWS, seed=5)
    assert frame["customer_id"].is_unique
    assert frame["customer_id"].str.fullmatch(r"C\d{9}").all()
    assert frame["email"].str.fullmatch(r"[a-z]+\.[a-z]+\.\d+@(example\.(com|org|net)|mail\.example)").all()
    assert frame["phone"].str.fullmatch(r"\+1-\d{3}-555-01\d\d").all()  # fictional 555-01xx numbers
    assert frame["postcode"].str.fullmatch(r"\d{5}").all()
    assert frame["postcode"].str.startswith("0").any()  # leading zeros: ZIPs must stay text


def test_generated_data_passes_its_contract(tmp_path: Path) -> None:
    contract = load_contract(contract_path("churn"))
    path = write_churn_csv(tmp_path / "batch.csv", 3 * BLOCK_ROWS, seed=12)
    result = validate_files([path], contract)
    assert result.passed, result.summary()
    frame = result.files[0].frame
    assert frame is not None
    assert frame["total_charges"].isna().sum() == (frame["tenure_months"] == 0).sum() > 0
    assert 0.2 < frame["satisfaction_score"].isna().mean() < 0.4


def test_churn_carries_the_documented_signal() -> None:
    frame = churn_frame(40_000, seed=21)
    rate = frame["churned"].mean()
    assert 0.2 < rate < 0.33
    by_contract = frame.groupby("contract_type")["churned"].mean()
    assert by_contract["month_to_month"] > 2 * by_contract["two_year"]
    calls = frame.groupby(np.minimum(frame["support_calls"], 4))["churned"].mean()
    assert calls.is_monotonic_increasing
    assert (
        frame.loc[frame["tenure_months"] > 48, "churned"].mean()
        < frame.loc[frame["tenure_months"] < 6, "churned"].mean()
    )
