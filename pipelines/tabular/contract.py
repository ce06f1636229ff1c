"""The data contract of the ``tabular`` template: what a team's raw batch must look like.

One definition, three users: ``config/`` embeds it in a team entry (pydantic validates these stdlib
dataclasses when the config is loaded), the CDK/local runtime writes it as ``contract.json`` next to the
step code, and the step scripts read it back inside the container with :func:`load_contract`. Only the
standard library is used here because the SageMaker framework containers do not ship pydantic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Objective = Literal["binary", "multiclass", "regression"]
DType = Literal["int", "float", "str", "bool", "date"]
# What a column is for. Direct identifiers never leave the raw zone in clear; quasi-identifiers are
# generalized; ``id`` columns are tokenized and kept only to join predictions back.
# ``protected`` columns (e.g. sex, ethnicity) are kept in the curated splits to measure how the model treats
# each group, and are not model features unless the contract opts in (``protected_as_features``).
Role = Literal["feature", "target", "id", "direct_identifier", "quasi_identifier", "ignore", "protected"]
Generalization = Literal["age_band", "prefix", "year"]

# The metrics ``evaluate`` reports per objective, and whether higher is better. The quality gate and the
# champion/challenger comparison may only use these.
METRICS: dict[str, dict[str, bool]] = {
    "binary": {
        "auc": True,
        "pr_auc": True,
        "accuracy": True,
        "f1": True,
        "precision": True,
        "recall": True,
        "log_loss": False,
    },
    "multiclass": {"accuracy": True, "macro_f1": True, "log_loss": False},
    "regression": {"rmse": False, "mae": False, "r2": True},
}
# The training hyperparameters' defaults: one source for train.py (``HyperParameters``), the pipeline
# definition (its NumRound/MaxDepth/Eta parameters) and the README (a test checks the documented line).
TRAINING_DEFAULTS: dict[str, int | float] = {
    "num_round": 200,
    "max_depth": 6,
    "eta": 0.2,
    "early_stopping_rounds": 20,
    "subsample": 0.9,
    "min_child_weight": 1.0,
    "seed": 42,
}
#: How much better than the trivial model a challenger must be (absolute for metrics where higher is better,
#: a fraction of the trivial value for rmse/mae/log_loss), on the gate metric and the second metric: the
#: default of a team's ``metric_gate.trivial_margin`` and of ``evaluate.py --trivial-margin``.
DEFAULT_TRIVIAL_MARGIN = 0.01
#: The "no champion" marker: a small per-team file provisioned with the contract (a CDK asset, or the local
#: runtime's upload). The pipeline's ``ChampionModelUri`` defaults to it, because a processing input whose S3
#: prefix holds no object fails the job; ``evaluate.py`` reads a champion folder holding only it as "none".
NO_CHAMPION_FILE = "no-champion.json"
NO_CHAMPION_KEY = "flywheel_no_champion"
NO_CHAMPION_CONTENT = (
    b'{"flywheel_no_champion": true, "what": "ChampionModelUri default: no approved champion model to compare with"}\n'
)
#: The rules ``decision_threshold`` may name (besides a fixed number); see ``thresholds.py``.
DECISION_RULES = ("max_f1", "youden")
# Metrics bounded to [0, 1]; the others (log_loss, rmse, mae) are non-negative and unbounded, r2 <= 1.
UNIT_INTERVAL_METRICS = frozenset({"auc", "pr_auc", "accuracy", "f1", "precision", "recall", "macro_f1"})


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the raw batch and the checks applied to it."""

    name: str
    dtype: DType
    role: Role = "feature"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    # How a quasi-identifier is generalized: ``age_band`` (date of birth -> 10-year band at
    # ``reference_date``), ``prefix`` (keep the first ``width`` characters, e.g. postcode district),
    # ``year`` (date -> year).
    generalize: Generalization | None = None
    width: int | None = None


@dataclass(frozen=True)
class SplitSpec:
    """Train/validation/test fractions; stratified on the target for classification."""

    validation: float = 0.15
    test: float = 0.15
    seed: int = 42


@dataclass(frozen=True)
class DataContract:
    """The schema, checks and privacy treatment of one team's dataset."""

    target: str
    objective: Objective
    columns: tuple[ColumnSpec, ...]
    min_rows: int = 100
    split: SplitSpec = field(default_factory=SplitSpec)
    # Date at which ages are computed; fixed so that the same batch always gives the same output.
    reference_date: str = "2026-01-01"
    # Training sanity checks (``train.py``): every class of a classification target needs at least this
    # many rows in the training split; a feature column with no value at all in the training split is a
    # warning (``warn``: trained anyway, shown in the report) or fails the run (``fail``).
    min_class_count: int = 5
    empty_feature: Literal["warn", "fail"] = "warn"
    # Use the ``protected`` columns as model features too (a warning in the model's metadata and report).
    protected_as_features: bool = False
    # Binary only: how the decision threshold on P(positive class) is chosen, on the validation split
    # (``train.py``, ``thresholds.choose_threshold``): ``max_f1``, ``youden``, or a fixed number in (0, 1).
    # Serving (``inference.py``) and the test metrics use the chosen value; it is in the model's metadata.
    decision_threshold: str | float = "max_f1"
    # Binary only: which target value is the positive class (the one whose probability the model reports,
    # whose recall/precision/F1 are measured and whose selection rate fairness compares). Written as in
    # ``allowed`` (a string). Unset: the second ``allowed`` value (a ``ValueError`` without ``allowed``).
    positive_class: str | None = None

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name`` (KeyError if the contract has none)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def names(self, *roles: Role) -> list[str]:
        """Column names with one of ``roles`` (all columns when none given), in contract order."""
        return [c.name for c in self.columns if not roles or c.role in roles]

    def to_json(self) -> str:
        """Stable JSON (sorted keys) so that the same contract always hashes the same."""
        return json.dumps(asdict(self), sort_keys=True, indent=2)


# Column names become parquet columns, model feature names and CSV headers: keep them plain.
_COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def _parses_as(value: str, dtype: str) -> bool:
    if dtype == "int":
        return re.fullmatch(r"-?\d+", value) is not None
    if dtype == "bool":
        return value.lower() in ("true", "false", "0", "1")
    return True


def contract_problems(contract: DataContract) -> list[str]:
    """Internal-consistency problems of a contract (empty when it is usable)."""
    problems: list[str] = []
    names = [c.name for c in contract.columns]
    bad_names = [n for n in names if not _COLUMN_NAME.match(n)]
    if bad_names:
        problems.append(f"column names must be letters, digits and underscores (max 64): {bad_names}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"duplicate column names: {', '.join(dupes)}")
    targets = [c.name for c in contract.columns if c.role == "target"]
    if targets != [contract.target]:
        problems.append(f"exactly one column with role 'target' named {contract.target!r} is required")
    if not contract.names("feature", "quasi_identifier", *(("protected",) if contract.protected_as_features else ())):
        problems.append("at least one feature column is required")
    for col in contract.columns:
        if col.role == "protected" and col.dtype not in ("str", "int", "bool"):
            problems.append(f"column {col.name!r}: a protected column needs dtype str, int or bool (its groups)")
    for col in contract.columns:
        if col.min is not None and col.max is not None and col.min > col.max:
            problems.append(f"column {col.name!r}: min {col.min} is greater than max {col.max}")
        if col.allowed is not None and col.dtype not in ("str", "int", "bool"):
            problems.append(f"column {col.name!r}: 'allowed' needs dtype str, int or bool")
        elif col.allowed is not None:
            # Allowed values are written as strings in JSON; each must parse as the column's dtype.
            unparsable = [v for v in col.allowed if not _parses_as(str(v), col.dtype)]
            if unparsable:
                problems.append(f"column {col.name!r}: allowed values {unparsable} are not {col.dtype}")
        if col.generalize and col.role != "quasi_identifier":
            problems.append(f"column {col.name!r}: 'generalize' only applies to quasi_identifier columns")
        if col.role == "quasi_identifier" and not col.generalize:
            problems.append(f"column {col.name!r}: a quasi_identifier needs a 'generalize' rule")
        if col.generalize == "prefix" and not col.width:
            problems.append(f"column {col.name!r}: 'prefix' generalization needs a positive 'width'")
        if col.generalize in ("age_band", "year") and col.dtype != "date":
            problems.append(f"column {col.name!r}: {col.generalize!r} generalization needs dtype date")
    if contract.objective != "regression":
        target = next((c for c in contract.columns if c.name == contract.target), None)
        if target is not None and target.dtype == "float":
            problems.append(f"objective {contract.objective!r} needs a categorical target, not float")
        binary_allowed = target.allowed if target is not None and contract.objective == "binary" else None
        if binary_allowed is not None and len(set(binary_allowed)) != 2:
            problems.append(f"binary target {contract.target!r} needs exactly two allowed values")
    if contract.positive_class is not None:
        target = next((c for c in contract.columns if c.name == contract.target), None)
        allowed = [str(a) for a in (target.allowed or ())] if target is not None else []
        if contract.objective != "binary":
            problems.append("positive_class applies only to a binary objective")
        elif str(contract.positive_class) not in allowed:
            problems.append(
                f"positive_class {contract.positive_class!r} is not one of the target's allowed values {allowed}"
            )
    if not 0 < contract.split.validation < 1 or not 0 < contract.split.test < 1:
        problems.append("split fractions must be between 0 and 1")
    elif contract.split.validation + contract.split.test >= 0.9:
        problems.append("split: validation + test must leave at least 10% for training")
    if contract.min_rows < 10:
        problems.append("min_rows must be at least 10")
    if contract.min_class_count < 1:
        problems.append("min_class_count must be at least 1")
    if contract.empty_feature not in ("warn", "fail"):
        problems.append("empty_feature must be 'warn' or 'fail'")
    rule = contract.decision_threshold
    if isinstance(rule, bool) or not (
        rule in DECISION_RULES or (isinstance(rule, int | float) and 0 < float(rule) < 1)
    ):
        problems.append(f"decision_threshold must be one of {list(DECISION_RULES)} or a number in (0, 1), got {rule!r}")
    return problems


def contract_from_dict(data: dict[str, Any]) -> DataContract:
    """Build a contract from its JSON form; ValueError naming the problem when it is malformed."""
    try:
        columns = tuple(
            ColumnSpec(**{**c, "allowed": tuple(c["allowed"]) if c.get("allowed") is not None else None})
            for c in data["columns"]
        )
        split = SplitSpec(**data.get("split", {}))
        rest = {k: v for k, v in data.items() if k not in ("columns", "split")}
        contract = DataContract(columns=columns, split=split, **rest)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed data contract: {exc}") from exc
    problems = contract_problems(contract)
    if problems:
        raise ValueError("invalid data contract: " + "; ".join(problems))
    return contract


def merge_status(statuses: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Combine the per-host validation statuses of one batch: it passes only if every host passed.

    Here (stdlib, importable both in the containers and by the local runtime) because each preprocessing
    host writes its own ``status/validation-<host>.json`` and every reader must apply the same rule the
    pipeline's contract check applies.
    """
    failures = [f for s in statuses for f in s.get("failures", [])]
    passed = bool(statuses) and all(s.get("passed") for s in statuses)
    failed = [s for s in statuses if not s.get("passed")]
    summary = "; ".join(str(s.get("summary", "")) for s in failed) or (
        f"all {len(statuses)} host(s) passed" if statuses else "no host status"
    )
    out: dict[str, Any] = {"passed": passed, "failures": failures, "summary": summary}
    if passed:
        out["rows"] = sum(int(s.get("rows", 0)) for s in statuses)
    return out


def load_contract(path: str | Path) -> DataContract:
    """Read ``contract.json`` written by :meth:`DataContract.to_json`."""
    return contract_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
