"""preprocess.py end to end on tmp_path: outputs, bad batches, privacy, tokens, sharding."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from contract import merge_status
from preprocess import assign_splits, host_info, load_pii_key, main, row_hash
from tabular_helpers import CONTRACTS, FIXTURES, PII_KEY, run_preprocess, tree_hashes
from validation import validate_files

from flywheel.datasets import write_churn_csv, write_churn_shards
from flywheel.datasets.churn import FIRST_NAMES, LAST_NAMES

CHURN = CONTRACTS / "churn.json"
SPLIT_DIRS = ("train", "validation", "test")


def _text_frame() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "churn.csv", dtype=str, keep_default_na=False)


def _read_dir(directory: Path) -> pd.DataFrame:
    files = sorted(directory.glob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def _status(out: Path) -> dict:
    return json.loads((out / "status" / "validation.json").read_text())


# --- a good batch ------------------------------------------------------------------------------------


def test_good_batch_writes_every_channel(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 1000, seed=1)
    out = tmp_path / "out"
    assert run_preprocess(CHURN, raw, out) == 0
    status = _status(out)
    assert status["passed"] is True
    assert status["rows"] == 1000
    # Each row's split comes from its own hash: the contract's 70/15/15 up to binomial noise (sd ~11 here).
    splits = status["splits"]
    assert sum(splits.values()) == 1000
    assert abs(splits["validation"] - 150) < 45 and abs(splits["test"] - 150) < 45
    assert splits == {"train": 672, "validation": 169, "test": 159}  # pinned: the split is deterministic
    assert status["token_version"] == 2 and status["split_version"] == 2
    for split in SPLIT_DIRS:
        assert [p.name for p in (out / split).iterdir()] == ["part-algo-1.parquet"]
    stats = json.loads((out / "baseline" / "stats-algo-1.json").read_text())
    assert stats["rows"] == splits["train"]
    assert stats["columns"]["contract_type"]["count"] == splits["train"]
    assert not (out / "quarantine").exists()


def test_splits_are_stratified_disjoint_and_deterministic(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 2000, seed=2)
    runs = []
    for name in ("one", "two"):
        assert run_preprocess(CHURN, raw, tmp_path / name) == 0
        runs.append({s: _read_dir(tmp_path / name / s) for s in SPLIT_DIRS})
    for split in SPLIT_DIRS:
        pd.testing.assert_frame_equal(runs[0][split], runs[1][split])
    ids = [set(runs[0][s]["customer_id"]) for s in SPLIT_DIRS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    positives = sum(int(runs[0][s]["churned"].sum()) for s in SPLIT_DIRS)
    for s, frac in (("validation", 0.15), ("test", 0.15)):
        # stratified in expectation: the hash ignores the class, so each class splits 70/15/15 up to
        # binomial noise (4 standard deviations)
        sd = (positives * frac * (1 - frac)) ** 0.5
        assert abs(int(runs[0][s]["churned"].sum()) - positives * frac) < 4 * sd
        assert abs(len(runs[0][s]) - 2000 * frac) < 4 * (2000 * frac * (1 - frac)) ** 0.5


def test_assign_splits_is_independent_of_row_order(churn_contract) -> None:
    frame = validate_files([FIXTURES / "churn.csv"], churn_contract).files[0].frame
    assert frame is not None
    split = pd.Series(assign_splits(frame, churn_contract), index=frame["customer_id"])
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    split2 = pd.Series(assign_splits(shuffled, churn_contract), index=shuffled["customer_id"])
    pd.testing.assert_series_equal(split.sort_index(), split2.sort_index())


def test_row_hash_depends_on_seed_and_values() -> None:
    frame = pd.DataFrame({"a": ["x", "y", "x", None], "b": [1.0, 1.0, 1.0, np.nan]})
    h = row_hash(frame, ["a", "b"], seed=1)
    assert h[0] == h[2] and len(set(h.tolist())) == 3
    assert (row_hash(frame, ["a", "b"], seed=2) != h).all()
    # Pinned values: a row's split must not change between versions, containers or machines.
    assert int(row_hash(pd.DataFrame({"a": ["C000000001"]}), ["a"], seed=42)[0]) == 5839043080649508585
    mixed = pd.DataFrame({"a": [1.5], "b": pd.to_datetime(["2020-01-02"])})
    assert int(row_hash(mixed, ["a", "b"], seed=42)[0]) == 3448124522448833058
    # The same text hashes the same whatever the pandas string dtype.
    as_object = pd.DataFrame({"a": pd.Series(["C000000001"], dtype=object)})
    assert int(row_hash(as_object, ["a"], seed=42)[0]) == 5839043080649508585


# --- bad batches -------------------------------------------------------------------------------------


def _out_of_range(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(monthly_charges=f["monthly_charges"].where(~f.index.isin([10, 11]), "9999.99"))


def _unknown_category(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(payment_method=f["payment_method"].where(f.index != 12, "bitcoin"))


def _extra_pii_column(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(national_insurance_number=[f"QQ{i:06d}C" for i in range(len(f))])


def _too_few_rows(f: pd.DataFrame) -> pd.DataFrame:
    return f.head(120)


def _null_drift(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(support_calls=f["support_calls"].where(f.index % 7 != 0, ""))


def _dtype_drift(f: pd.DataFrame) -> pd.DataFrame:
    return f.assign(tenure_months=f["tenure_months"].where(f.index != 33, "twelve"))


def _missing_column(f: pd.DataFrame) -> pd.DataFrame:
    return f.drop(columns=["internet_service"])


BAD_BATCHES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str | None, str]] = {
    "out_of_range": (_out_of_range, "monthly_charges", "max"),
    "unknown_category": (_unknown_category, "payment_method", "allowed"),
    "extra_pii_column": (_extra_pii_column, "national_insurance_number", "unexpected_column"),
    "too_few_rows": (_too_few_rows, None, "min_rows"),
    "null_drift": (_null_drift, "support_calls", "not_null"),
    "dtype_drift": (_dtype_drift, "tenure_months", "dtype"),
    "missing_column": (_missing_column, "internet_service", "column_present"),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_bad_batch_is_quarantined_with_a_report(tmp_path: Path, case: str) -> None:
    mutate, column, check = BAD_BATCHES[case]
    raw = tmp_path / "raw"
    raw.mkdir()
    mutate(_text_frame()).to_csv(raw / "batch.csv", index=False)
    before = tree_hashes(raw)
    out = tmp_path / "out"

    assert run_preprocess(CHURN, raw, out) == 0  # a bad batch is data, not a job failure

    assert tree_hashes(raw) == before  # raw input untouched
    status = _status(out)
    assert status["passed"] is False
    assert check in status["summary"]
    if column:
        assert column in status["summary"]
    failures = [(f["column"], f["check"]) for f in status["failures"]]
    assert (column, check) in failures
    report = json.loads((out / "quarantine" / "report.json").read_text())
    assert (column, check) in [(f["column"], f["check"]) for f in report["failures"]]
    failure = next(f for f in report["failures"] if f["check"] == check)
    assert failure["failure_count"] > 0
    if check not in ("min_rows", "unexpected_column", "column_present"):
        assert failure["examples"]  # row indices to look at
    # The failing file is copied byte for byte; nothing reaches the curated channels.
    assert (out / "quarantine" / "batch.csv").read_bytes() == (raw / "batch.csv").read_bytes()
    for split in (*SPLIT_DIRS, "baseline"):
        assert not (out / split).exists() or not any((out / split).iterdir())


def test_extra_column_values_are_not_in_the_report(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    _extra_pii_column(_text_frame()).to_csv(raw / "batch.csv", index=False)
    out = tmp_path / "out"
    assert run_preprocess(CHURN, raw, out) == 0
    for path in (out / "quarantine" / "report.json", out / "status" / "validation.json"):
        assert "QQ000" not in path.read_text()


def test_only_failing_files_are_quarantined_and_the_whole_batch_is_held(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "good.csv", 500, seed=3)
    (raw / "sub").mkdir()
    _unknown_category(_text_frame()).to_csv(raw / "sub" / "bad.csv", index=False)
    out = tmp_path / "out"
    assert run_preprocess(CHURN, raw, out) == 0
    assert sorted(p.relative_to(out / "quarantine").as_posix() for p in (out / "quarantine").rglob("*.csv")) == [
        "sub/bad.csv"
    ]
    assert _status(out)["quarantined_files"] == ["sub/bad.csv"]
    assert not (out / "train").exists()


def test_empty_input_fails_validation(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    assert run_preprocess(CHURN, tmp_path / "raw", tmp_path / "out") == 0
    status = _status(tmp_path / "out")
    assert status["passed"] is False
    assert status["failures"][0]["check"] == "no_input"


# --- configuration errors ----------------------------------------------------------------------------


def test_missing_pii_key_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("FLYWHEEL_PII_KEY", raising=False)
    write_churn_csv(tmp_path / "raw" / "a.csv", 300)
    code = main(["--contract", str(CHURN), "--input-dir", str(tmp_path / "raw"), "--output-dir", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--pii-key-file" in err and "FLYWHEEL_PII_KEY" in err and "customer_id" in err
    assert not (tmp_path / "o").exists()


def test_pii_key_from_env_and_contracts_without_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_PII_KEY", PII_KEY)
    write_churn_csv(tmp_path / "raw" / "a.csv", 300)
    args = ["--input-dir", str(tmp_path / "raw"), "--resource-config", str(tmp_path / "none.json")]
    assert main(["--contract", str(CHURN), "--output-dir", str(tmp_path / "o"), *args]) == 0
    assert _status(tmp_path / "o")["passed"] is True
    # diabetes has no id column: no key needed at all
    monkeypatch.delenv("FLYWHEEL_PII_KEY")
    raw = tmp_path / "diab"
    raw.mkdir()
    (raw / "d.csv").write_bytes((FIXTURES / "diabetes.csv").read_bytes())
    code = main(
        ["--contract", str(CONTRACTS / "diabetes.json"), "--input-dir", str(raw), "--output-dir", str(tmp_path / "d")]
    )
    assert code == 0


def test_load_pii_key(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    key_file.write_text(PII_KEY + "\n")
    assert load_pii_key(str(key_file), {"FLYWHEEL_PII_KEY": "ignored-because-file-wins"}) == PII_KEY.encode()
    assert load_pii_key(None, {"FLYWHEEL_PII_KEY": PII_KEY}) == PII_KEY.encode()
    assert load_pii_key(None, {}) is None
    with pytest.raises(Exception, match="at least 32 bytes, got 5"):
        load_pii_key(None, {"FLYWHEEL_PII_KEY": "short"})
    with pytest.raises(Exception, match="at least 32 bytes, got 31"):
        load_pii_key(None, {"FLYWHEEL_PII_KEY": "k" * 31})
    with pytest.raises(Exception, match="does not exist"):
        load_pii_key(str(tmp_path / "missing"), {})


def test_host_info(tmp_path: Path) -> None:
    assert host_info(tmp_path / "missing.json") == ("algo-1", ["algo-1"])
    cfg = tmp_path / "rc.json"
    cfg.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    assert host_info(cfg) == ("algo-2", ["algo-1", "algo-2"])


# --- privacy -----------------------------------------------------------------------------------------

_EMAIL = re.compile(rb"[a-z]+\.[a-z]+\.\d+@[a-z.]+")
_PHONE = re.compile(rb"\+1-\d{3}-555-\d{4}")
_NAME = re.compile(("(" + "|".join(FIRST_NAMES) + ") (" + "|".join(LAST_NAMES) + ")").encode())


def _pii_hits(data: bytes) -> int:
    return sum(len(p.findall(data)) for p in (_EMAIL, _PHONE, _NAME))


def test_no_direct_identifier_reaches_any_output(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 2000, seed=5)
    source = pd.read_csv(raw / "a.csv", dtype=str)
    needles = set(source["name"]) | set(source["email"]) | set(source["phone"]) | set(source["customer_id"])
    raw_bytes = (raw / "a.csv").read_bytes()
    assert _pii_hits(raw_bytes) >= 3 * 2000  # the scanners do find every identifier in the raw file
    out = tmp_path / "out"
    assert run_preprocess(CHURN, raw, out) == 0
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.parent.name for p in files} == {*SPLIT_DIRS, "baseline", "status"}
    for path in files:
        data = path.read_bytes()
        assert _pii_hits(data) == 0, path
        if path.suffix == ".parquet":
            # Parquet pages are compressed: also check every decoded cell, not just the bytes.
            cells = {str(v) for col in pq.read_table(path).to_pandas().astype(object).to_numpy().T for v in col}
            assert not cells & needles, path
        else:
            text = data.decode()
            assert not [n for n in needles if n in text], path


def test_tokens_are_stable_for_a_key_and_differ_across_keys(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "a.csv", 400, seed=6)
    tokens = []
    for i, key in enumerate((PII_KEY, PII_KEY, "a-different-key-0123456789-0123456789")):
        out = tmp_path / f"out{i}"
        key_file = tmp_path / f"key{i}"
        key_file.write_text(key)
        args = ["--contract", str(CHURN), "--input-dir", str(raw), "--output-dir", str(out)]
        assert main([*args, "--pii-key-file", str(key_file)]) == 0
        frames = pd.concat([_read_dir(out / s) for s in SPLIT_DIRS])
        tokens.append(set(frames["customer_id"]))
    assert len(tokens[0]) == 400
    assert tokens[0] == tokens[1]
    assert not tokens[0] & tokens[2]


# --- sharding ----------------------------------------------------------------------------------------


def test_three_shards_give_the_rows_of_one_run(tmp_path: Path) -> None:
    shards = write_churn_shards(tmp_path / "all", 3000, 3, seed=8)
    single = tmp_path / "single"
    assert run_preprocess(CHURN, tmp_path / "all", single) == 0
    sharded = tmp_path / "sharded"
    hosts = ["algo-1", "algo-2", "algo-3"]
    for host, shard in zip(hosts, shards, strict=True):
        # ShardedByS3Key: each instance sees its own files; all upload to the same output prefixes.
        own = tmp_path / f"in-{host}"
        own.mkdir()
        (own / shard.name).write_bytes(shard.read_bytes())
        rc = tmp_path / f"rc-{host}.json"
        rc.write_text(json.dumps({"current_host": host, "hosts": hosts}))
        assert run_preprocess(CHURN, own, sharded, "--resource-config", str(rc)) == 0
    assert sorted(p.name for p in (sharded / "train").iterdir()) == [f"part-{h}.parquet" for h in hosts]
    assert sorted(p.name for p in (sharded / "baseline").iterdir()) == [f"stats-{h}.json" for h in hosts]
    statuses = [json.loads((sharded / "status" / f"validation-{h}.json").read_text()) for h in hosts]
    assert merge_status(statuses)["passed"] is True
    assert merge_status(statuses)["rows"] == 3000

    def rows(root: Path) -> pd.DataFrame:
        frame = pd.concat([_read_dir(root / s) for s in SPLIT_DIRS], ignore_index=True)
        return frame.sort_values("customer_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(rows(single), rows(sharded))
    # Each row's split comes from its own hash alone: sharding changes no row's split.
    assign_single = pd.concat([_read_dir(single / s).assign(split=s) for s in SPLIT_DIRS])
    assign_sharded = pd.concat([_read_dir(sharded / s).assign(split=s) for s in SPLIT_DIRS])
    same = (
        assign_single.set_index("customer_id")["split"].sort_index()
        == assign_sharded.set_index("customer_id")["split"].sort_index()
    )
    assert same.all()


def test_merge_status_fails_if_any_host_fails() -> None:
    ok = {"passed": True, "rows": 10, "summary": "fine"}
    bad = {"passed": False, "failures": [{"check": "max"}], "summary": "column 'x' failed check 'max'"}
    merged = merge_status([ok, bad, ok])
    assert merged["passed"] is False
    assert merged["failures"] == [{"check": "max"}]
    assert "'max'" in merged["summary"]
    assert merge_status([])["passed"] is False


# --- the batch must come from the team's incoming prefix (finding 4) -------------------------------------

ALLOWED = "s3://raw-bucket/churn/incoming/"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://raw-bucket/churn/_keys/",  # the team's PII key folder: readable by the role, never a batch
        "s3://raw-bucket/churn/_keys/pii-hmac.key",
        "s3://raw-bucket/diagnostics/incoming/b1/",
        "s3://other-bucket/churn/incoming/b1/",
        "s3://raw-bucket/churn/incoming/",  # the prefix itself: every batch at once
        "s3://raw-bucket/churn/incoming/../_keys/",
        "s3://raw-bucket/churn/incoming-old/b1/",
        "s3://raw-bucket/churn/quarantine/flywheel-dev-churn-tabular/e1/",
    ],
)
def test_a_batch_outside_the_teams_incoming_prefix_is_refused(
    tmp_path: Path, uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "part-0.csv", 50, seed=1)
    code = run_preprocess(
        CONTRACTS / "churn.json", raw, tmp_path / "out", "--input-uri", uri, "--allowed-input-prefix", ALLOWED
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "outside this team's incoming prefix" in err and uri in err
    assert not (tmp_path / "out" / "train").exists()  # nothing written


def test_a_batch_under_the_teams_incoming_prefix_is_processed(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_churn_csv(raw / "part-0.csv", 200, seed=1)
    uri = ALLOWED + "2026-01-01/"
    code = run_preprocess(
        CONTRACTS / "churn.json", raw, tmp_path / "out", "--input-uri", uri, "--allowed-input-prefix", ALLOWED
    )
    assert code == 0


def test_input_uri_and_allowed_prefix_go_together(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run_preprocess(CONTRACTS / "churn.json", tmp_path, tmp_path / "out", "--input-uri", ALLOWED + "b/")
