"""Verified pseudonymization (``pii_scan.py``): each detector, the raw-identifier check, the job's gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pii_scan
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tabular_helpers import CONTRACTS, FIXTURES, PipelineRun, run_preprocess


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        ("jerry.miller.1888@example.net", "email"),
        ("write to Ann.Lee+news@mail.example.co.uk today", "email"),
        ("+1-767-555-0106", "phone"),
        ("+447946095800", "phone"),
        ("767-555-0106", "phone"),
        ("(020) 7946 0958", "phone"),
        ("4111 1111 1111 1111", "card"),
        ("4111-1111-1111-1111", "card"),
        ("378282246310005", "card"),  # 15-digit Amex test number
    ],
)
def test_each_detector_finds_its_shape(text: str, detector: str) -> None:
    assert detector in pii_scan.shape_findings(text)


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        ("jerry.miller at example dot net", "email"),
        ("user@localhost", "email"),
        ("2026-01-01", "phone"),
        ("2026-01-01T10:00:00+00:00", "phone"),
        ("30-39", "phone"),
        ("555 0123", "phone"),
        ("C000063352", "phone"),
        ("4111 1111 1111 1112", "card"),  # fails the Luhn check
        ("411111111111", "card"),  # 12 digits: too short
        ("3f4a9c0d1e2b3a4f5c6d7e8f90a1b2c3", "card"),  # an HMAC token
    ],
)
def test_each_detector_leaves_lookalikes_alone(text: str, detector: str) -> None:
    assert detector not in pii_scan.shape_findings(text)


def test_luhn() -> None:
    assert pii_scan.luhn_valid("4111111111111111")
    assert pii_scan.luhn_valid("79927398713")
    assert not pii_scan.luhn_valid("79927398710")
    assert not pii_scan.luhn_valid("4111x11111111111")


def _write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def test_findings_name_file_column_and_detector_never_the_value(tmp_path: Path) -> None:
    raw = pd.DataFrame({"customer_id": ["C001", "C002"], "email": ["a.b@example.org", "c.d@example.org"]})
    identifiers = {c: pii_scan.hash_values(raw[c]) for c in raw.columns}
    token = "0123456789abcdef0123456789abcdef"
    curated = _write_parquet(
        tmp_path / "train" / "part-algo-1.parquet",
        pd.DataFrame(
            {
                "customer_id": [token, "C002"],  # one id left untokenized
                "notes": ["fine", " c002 "],  # a raw id in clear (normalized match)
                "card_number": [4111111111111111, 12],  # an integer card number
                "contact": ["none", "x.y@example.com"],  # an e-mail that is no raw identifier
            }
        ),
    )
    report = pii_scan.scan_paths([(curated, "train/part-algo-1.parquet")], identifiers, token_columns=["customer_id"])
    found = {(f.column, f.detector): f.count for f in report.findings}
    assert found == {
        ("customer_id", "untokenized"): 1,
        ("customer_id", "identifier:customer_id"): 1,
        ("notes", "identifier:customer_id"): 1,
        ("card_number", "card"): 1,
        ("contact", "email"): 1,
    }
    assert {f.file for f in report.findings} == {"train/part-algo-1.parquet"}
    text = json.dumps(report.to_dict())
    for value in ("C002", "c002", "x.y@example.com", "4111111111111111"):
        assert value not in text
    assert not report.passed and "train/part-algo-1.parquet" in report.summary()
    assert pii_scan.shape_findings.cache_info().currsize == 0  # no scanned text is held after the scan


#: text_hashes of "", "jane.doe@example.org", "c002", "naïve" (the function itself, pinned).
PINNED = [16852473371444490038, 12441973723561099393, 5768267492700418750, 12781838842870972604]
HASH_WORDS = [
    "",
    "a",
    "ab",
    "ab\x00",
    "abcdefgh",
    "abcdefgh\x00",
    "é" * 5,
    "x" * 1000,
    "x" * 1001,
    "y" * 256,
    "y" * 257,
    "naïve",
    "12345678",
]


def test_text_hashes_of_a_string_do_not_depend_on_its_batch() -> None:
    """A raw value and an output cell are hashed in different batches: the same string, the same hash,
    wherever it sits (chunks, slices, next to long strings); the pinned values keep it one function in
    every process."""
    alone = [int(pii_scan.text_hashes(pa.array([w]))[0]) for w in HASH_WORDS]
    assert len(set(alone)) == len(HASH_WORDS)  # trailing zero bytes and padding are told apart
    mixed = pii_scan.text_hashes(pa.chunked_array([pa.array(["zz" * 50, *HASH_WORDS]), pa.array(HASH_WORDS[::-1])]))
    assert list(mixed[1:]) == alone + alone[::-1]
    assert list(pii_scan.text_hashes(pa.array(["prefix", *HASH_WORDS]).slice(1))) == alone
    assert list(pii_scan.text_hashes(pa.array(HASH_WORDS, pa.large_string()))) == alone
    assert list(pii_scan.text_hashes(pa.array(["x", "", ""]).slice(1))) == [alone[0]] * 2  # no bytes at all
    assert [int(h) for h in pii_scan.text_hashes(pa.array(["", "jane.doe@example.org", "c002", "naïve"]))] == PINNED


def test_a_long_cell_is_hashed_on_its_own_not_by_the_word_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fold takes a pass per word of its longest string: a 1 MB cell goes to BLAKE2b, the rest stay."""
    folded: list[int] = []
    real = pii_scan._folded
    monkeypatch.setattr(
        pii_scan, "_folded", lambda raw, lengths: folded.append(int(lengths.max())) or real(raw, lengths)
    )
    values = ["a@example.org", "z" * 1_000_000, "c002"]
    hashes = pii_scan.text_hashes(pa.array(values))
    assert folded == [13] and len(set(hashes.tolist())) == 3
    assert hashes[1] == pii_scan.text_hashes(pa.array(["z" * 1_000_000]))[0]


def test_text_hashes_tell_apart_many_values_that_share_prefixes_and_lengths() -> None:
    rng = np.random.default_rng(3)
    same_length = [f"customer-{i:012d}@example.org" for i in rng.permutation(200_000)]
    shared_prefix = ["p" * 40 + str(i) for i in range(50_000)]  # differ only in their last word
    values = same_length + shared_prefix + ["p" * 41 + str(i) for i in range(5_000)]
    assert len(set(values)) == len(values)
    assert len(np.unique(pii_scan.text_hashes(pa.array(values)))) == len(values)


def test_json_documents_are_scanned_keys_and_values(tmp_path: Path) -> None:
    doc = tmp_path / "baseline" / "stats-algo-1.json"
    doc.parent.mkdir()
    doc.write_text(json.dumps({"columns": {"city": {"top": {"+44 20 7946 0958": 3, "London": 5}}}, "n": 8}))
    report = pii_scan.scan_paths([(doc, "baseline/stats-algo-1.json")], {})
    assert [(f.column, f.detector, f.count) for f in report.findings] == [("$.columns.city.top.<keys>", "phone", 1)]
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps({"auc": 0.8, "note": "age band 30-39, since 2026-01-01"}))
    assert pii_scan.scan_paths([(clean, "clean.json")], {}).passed


def test_jsonl_capture_files_are_scanned(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    lines = [{"captureData": {"endpointInput": {"data": "12,one_year,true"}}}] * 3
    lines.append({"captureData": {"endpointInput": {"data": "12,ann@example.com"}}})
    capture.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    report = pii_scan.scan_paths([(capture, "capture.jsonl")], {})
    assert report.rows == 4
    assert [(f.detector, f.count) for f in report.findings] == [("email", 1)]


# --- the job's gate (preprocess.main runs the scan) --------------------------------------------------------


def test_every_example_dataset_passes_the_scan_and_its_evaluation_report_too(chains: dict[str, PipelineRun]) -> None:
    """No false positive on the four example datasets: curated splits, baseline, status, evaluation."""
    from contract import load_contract

    for name, chain in chains.items():
        status = json.loads((chain.processed / "status" / "pii-scan.json").read_text())
        assert status["passed"] is True, (name, status["summary"])
        assert status["files"] >= 4 and status["rows"] > 0
        contract = load_contract(chain.contract_path)
        identifiers = pii_scan.raw_identifier_hashes(chain.raw, contract)
        report = pii_scan.scan_paths(pii_scan.iter_files(chain.evaluation), identifiers)
        assert report.passed, (name, report.summary())
    churn = json.loads((chains["churn"].processed / "status" / "pii-scan.json").read_text())
    assert churn["identifier_values"] > 3000 * 3  # ids, names, e-mails (and phones) of 3000 rows


def _leaky_contract(tmp_path: Path) -> Path:
    """The churn contract with ``email`` wrongly declared a (nullable, free-text) feature."""
    data: dict[str, Any] = json.loads((CONTRACTS / "churn.json").read_text())
    for col in data["columns"]:
        if col["name"] == "email":
            col.update(role="feature", nullable=True)
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(data))
    return path


def test_one_leaked_email_fails_the_scan_and_withholds_the_curated_outputs(tmp_path: Path) -> None:
    frame = pd.read_csv(FIXTURES / "churn.csv", dtype=str, keep_default_na=False)
    leaked = frame.loc[7, "email"]
    frame["email"] = ""
    frame.loc[7, "email"] = leaked  # exactly one e-mail reaches the curated data
    raw = tmp_path / "raw"
    raw.mkdir()
    frame.to_csv(raw / "batch.csv", index=False)
    out = tmp_path / "out"
    assert run_preprocess(_leaky_contract(tmp_path), raw, out, "--resource-config", str(tmp_path / "none")) == 0
    status = json.loads((out / "status" / "pii-scan-algo-1.json").read_text())
    assert status["passed"] is False
    # The split that got the row holds it, and so do the baseline statistics (the column's categories).
    finding, in_baseline = sorted(status["findings"], key=lambda f: f["file"].startswith("baseline/"))
    assert finding["column"] == "email" and finding["detector"] == "email" and finding["count"] == 1
    assert in_baseline["file"] == "baseline/stats-algo-1.json" and in_baseline["detector"] == "email"
    assert finding["file"] in {f"{s}/part-algo-1.parquet" for s in ("train", "validation", "test")}
    assert finding["file"] in status["summary"] and "'email'" in status["summary"]
    # Nothing curated is left for SageMaker to upload, and no status/report holds the value.
    assert not [p for s in pii_scan.WITHHELD_CHANNELS for p in (out / s).rglob("*") if p.is_file()]
    assert finding["file"] in status["withheld_files"]
    for path in out.rglob("*.json"):
        assert leaked not in path.read_text(), path
    # The validation itself passed (the contract was followed): the PII gate is what stops training.
    assert json.loads((out / "status" / "validation.json").read_text())["passed"] is True


def test_clean_batch_keeps_its_outputs(chains: dict[str, PipelineRun]) -> None:
    processed = chains["churn"].processed
    assert (processed / "train" / "part-algo-1.parquet").is_file()
    assert list((processed / "baseline").glob("stats-*.json"))
