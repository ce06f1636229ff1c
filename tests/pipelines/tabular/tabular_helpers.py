"""Shared helpers of the ``tabular`` step tests (a uniquely named module: ``conftest`` is ambiguous).

The step modules import their siblings as plain modules (``from contract import ...``) because the
SageMaker containers put the code folder itself on ``sys.path``; the tests do the same.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
STEP_DIR = REPO / "pipelines" / "tabular"
if str(STEP_DIR) not in sys.path:
    sys.path.insert(0, str(STEP_DIR))

FIXTURES = REPO / "tests" / "fixtures" / "data"
CONTRACTS = REPO / "config" / "contracts"
#: The fairness example's config directory (team ``credit``, contract with protected columns).
FAIRNESS_CONFIG = REPO / "config" / "examples" / "fairness"
PII_KEY = "unit-test-key-0123456789abcdef-0123"  # 34 bytes: keys must be 32+
GATE_METRIC = {"binary": "auc", "multiclass": "macro_f1", "regression": "rmse"}
#: Small enough for fast tests, enough rounds for a real model.
TRAIN_HPS = ["--num_round", "80", "--early_stopping_rounds", "10", "--max_depth", "4"]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root``."""
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class PipelineRun:
    """The folders of one preprocess -> train -> evaluate chain."""

    name: str
    contract_path: Path
    raw: Path
    processed: Path
    model: Path
    evaluation: Path
    raw_hashes: dict[str, str]

    @property
    def report(self) -> dict[str, Any]:
        """``evaluation.json``."""
        return json.loads((self.evaluation / "evaluation.json").read_text())


def run_preprocess(contract: Path, raw: Path, out: Path, *extra: str) -> int:
    """Call ``preprocess.main`` with a key file next to the output folder."""
    import preprocess

    key = out.parent / f"{out.name}.key"
    key.write_text(PII_KEY)
    return preprocess.main(
        [
            "--contract",
            str(contract),
            "--input-dir",
            str(raw),
            "--output-dir",
            str(out),
            "--pii-key-file",
            str(key),
            *extra,
        ]
    )


def run_chain(
    base: Path, name: str, write_raw: Callable[[Path], None], contract: Path | None = None, *evaluate_args: str
) -> PipelineRun:
    """preprocess -> train -> evaluate on ``tmp`` folders, asserting each step exits 0."""
    import evaluate
    import train

    contract = contract or CONTRACTS / f"{name}.json"
    raw, processed, model, evaluation = (base / d for d in ("raw", "processed", "model", "evaluation"))
    raw.mkdir(parents=True)
    write_raw(raw)
    raw_hashes = tree_hashes(raw)
    assert run_preprocess(contract, raw, processed, "--resource-config", str(base / "absent.json")) == 0
    contract_dir = base / "contract"
    contract_dir.mkdir()
    shutil.copyfile(contract, contract_dir / "contract.json")
    args = ["--train", str(processed / "train"), "--validation", str(processed / "validation")]
    assert train.main([*args, "--contract", str(contract_dir), "--model-dir", str(model), *TRAIN_HPS]) == 0
    objective = json.loads(contract.read_text())["objective"]
    assert (
        evaluate.main(
            [
                "--model-dir", str(model), "--test-dir", str(processed / "test"),
                "--baseline-dir", str(processed / "baseline"), "--contract", str(contract),
                "--output-dir", str(evaluation), "--gate-metric", GATE_METRIC[objective], *evaluate_args,
            ]
        )
        == 0
    )  # fmt: skip
    return PipelineRun(name, contract, raw, processed, model, evaluation, raw_hashes)


def fixture_writer(name: str) -> Callable[[Path], None]:
    def write(raw: Path) -> None:
        shutil.copyfile(FIXTURES / f"{name}.csv", raw / f"{name}.csv")

    return write


def generated_churn_writer(raw: Path) -> None:
    from flywheel.datasets import write_churn_csv

    # Generated rather than the 300-row fixture: enough rows for a meaningful AUC, still < 1 s.
    write_churn_csv(raw / "batch-0001.csv", 3000, seed=11)
