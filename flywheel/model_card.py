"""The model-card sections of the run report (:mod:`flywheel.report`): what an approver needs to decide.

Each function takes the report's ``run`` mapping (and the evaluation) and returns trusted HTML built with
the report's own helpers (everything from data is escaped there). Sections:

- :func:`card_section` ("Model card"): team, owner, intended use, objective, target, positive class and the
  decision threshold with how it was chosen;
- :func:`verdict_section` ("Should I approve?"): the gate's decision and each reason in words, the champion
  comparison, fairness and training warnings, and the exact approve / reject commands;
- :func:`contract_spec` (in "Data contract"): the contract's columns, roles, types and checks;
- :func:`threshold_classes_calibration` (in "Evaluation"): the threshold, per-class metrics, confusion
  matrix and the calibration table (ECE, Brier);
- :func:`champion_figures` (in "Evaluation"): the deployed champion's own evaluation, every metric;
- :func:`baseline_section` ("Drift baseline"): per-feature summary of the ``statistics.json`` the model
  is monitored against.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flywheel import report as r


def card_section(run: Mapping[str, Any], evaluation: Mapping[str, Any] | None) -> str:
    """Who owns the model, what it is for, what it predicts and at which threshold."""
    card = dict(run.get("card") or {})
    spec = dict(run.get("contract_spec") or {})
    training = dict((evaluation or {}).get("training") or {})
    threshold = dict((evaluation or {}).get("decision_threshold") or {})
    rows = [
        ("Team", r._e(run.get("team"))),
        ("Description", r._e(card.get("description") or r.DASH)),
        ("Owner", r._e(card.get("owner") or "not set (teams.yaml: owner)")),
        ("Intended use", r._e(card.get("intended_use") or "not set (teams.yaml: intended_use)")),
        ("Objective", r._e(run.get("objective", r.DASH))),
        ("Target", r._code(spec.get("target") or training.get("target"))),
    ]
    labels = training.get("class_labels")
    if labels:
        rows.append(("Classes (model order)", r._e(", ".join(repr(c) for c in labels))))
    if training.get("positive_label") is not None:
        said = ""
        if spec.get("positive_class") is not None:
            said = " (set in the contract (positive_class))"
        elif spec:
            said = " (the target's second allowed value: the contract sets no positive_class)"
        rows.append(("Positive class", r._e(f"{training['positive_label']!r}{said}")))
    if threshold:
        rows.append(
            (
                "Decision threshold",
                r._e(f"P({threshold.get('positive_label')!r}) >= {r._num(threshold.get('value'), 2)}: ")
                + r._e(threshold.get("method", "")),
            )
        )
    return r._section("card", "Model card", r._kv(rows))


def verdict_section(run: Mapping[str, Any], evaluation: Mapping[str, Any] | None) -> str:
    """The decision at a glance: gate reasons in words, warnings, and the commands to approve or reject."""
    parts: list[str] = []
    lin = run.get("lineage") or {}
    version = lin.get("model_package_version")
    if evaluation is None:
        parts.append(r._empty("Nothing to approve: the run was not evaluated (see Steps and Data contract)."))
        return r._section("decide", "Should I approve?", "".join(parts))
    gate = dict(evaluation.get("gate") or {})
    passed = bool(gate.get("passed", 0))
    head = (
        f"{r._badge('passed')} The quality gate passed: every check below holds."
        if passed
        else f"{r._badge('failed')} The quality gate failed: {r._e(gate.get('summary', ''))}."
    )
    parts.append(f"<p>{head}</p>")
    checks = gate.get("checks") or []
    if checks:
        items = "".join(
            f"<li>{r._badge('passed') if c.get('passed') else r._badge('failed')} "
            f"<strong>{r._e(_CHECK_NAMES.get(str(c.get('check')), c.get('check')))}</strong>: "
            f"{r._e(c.get('reason'))}</li>"
            for c in checks
        )
        parts.append(f'<ul class="reasons">{items}</ul>')
    warnings = list((evaluation.get("training") or {}).get("warnings") or [])
    fairness = evaluation.get("fairness") or {}
    for column, result in (fairness.get("columns") or {}).items():
        ratio = (result.get("gaps") or {}).get("selection_rate_ratio")
        if isinstance(ratio, int | float) and ratio < 0.8:
            warnings.append(f"selection-rate ratio on {column!r} is {ratio:.2f}, below the four-fifths rule's 0.8")
    if warnings:
        parts.append("<p><strong>Before approving, check:</strong></p><ul>")
        parts.append("".join(f"<li>{r._badge('warning')} {r._e(w)}</li>" for w in warnings) + "</ul>")
    if version not in (None, "") and lin.get("approval_status") in ("Approved", "Rejected"):
        ref = f"{run.get('team')}:{version}"
        status = str(lin["approval_status"])
        undo = f'flywheel reject {ref} --note "<why>"' if status == "Approved" else f"flywheel approve {ref}"
        parts.append(
            f"<p>{r._badge(status.lower())} Version {r._e(version)} is already {r._e(status)} "
            f"(approval recorded before this report was written). To change it: {r._code(undo)}</p>"
        )
    elif version not in (None, ""):
        ref = f"{run.get('team')}:{version}"
        parts.append(
            r._kv(
                [
                    ("Approve (deploys it)", r._code(f"flywheel approve {ref}")),
                    ("Reject", r._code(f'flywheel reject {ref} --note "<why>"')),
                ]
            )
        )
        parts.append(
            '<p class="muted">Approving a model worse than the deployed one asks for confirmation and says by '
            "how much (<code>--yes</code> skips the question).</p>"
        )
    else:
        parts.append(r._empty("No model package was registered by this run: there is nothing to approve."))
    return r._section("decide", "Should I approve?", "".join(parts))


_CHECK_NAMES = {
    "defined": "metric defined",
    "threshold": "threshold",
    "beats_trivial": "beats the trivial model",
    "second_metric": "second metric",
    "champion": "champion / challenger",
    "fairness": "fairness",
}


def contract_spec(run: Mapping[str, Any]) -> str:
    """The team's data contract: every column's dtype, role and checks, and the batch-level settings."""
    spec = run.get("contract_spec")
    if not spec:
        return ""
    rows = []
    for col in spec.get("columns") or []:
        checks = []
        if col.get("min") is not None or col.get("max") is not None:
            checks.append(f"range {r._num(col.get('min'), 2)} to {r._num(col.get('max'), 2)}")
        if col.get("allowed") is not None:
            checks.append("allowed " + ", ".join(map(str, col["allowed"]))[:160])
        if col.get("generalize"):
            checks.append(f"generalized: {col['generalize']}" + (f" ({col['width']})" if col.get("width") else ""))
        rows.append(
            (
                r._code(col.get("name")),
                r._e(col.get("dtype")),
                r._e(col.get("role", "feature")),
                r._e("yes" if col.get("nullable") else "no"),
                r._e("; ".join(checks) or r.DASH),
            )
        )
    split = spec.get("split") or {}
    settings = (
        f"min_rows {spec.get('min_rows')}; split validation {split.get('validation')}, test {split.get('test')} "
        f"(seed {split.get('seed')}); min_class_count {spec.get('min_class_count')}; empty_feature "
        f"{spec.get('empty_feature')}; protected_as_features {spec.get('protected_as_features')}"
    )
    return (
        "<h3>Contract</h3>"
        + r._table(["column", "dtype", "role", "nullable", "checks"], rows, cls="contract-columns")
        + f'<p class="muted">{r._e(settings)}</p>'
    )


def threshold_classes_calibration(evaluation: Mapping[str, Any]) -> str:
    """Decision threshold, per-class metrics, confusion matrix and calibration."""
    parts: list[str] = []
    chosen = evaluation.get("decision_threshold")
    if chosen:
        val = chosen.get("validation") or {}
        score = str(val.get("score_name", "")).replace("_", " ")
        detail = (
            f"; on validation {score} {r._num(val.get('validation_score'), 3)} at it vs "
            f"{r._num(val.get('validation_score_at_0_5'), 3)} at 0.5"
            if "validation_score" in val
            else ""
        )
        parts.append(
            "<h3>Decision threshold</h3>"
            f"<p>A row is predicted {r._e(repr(chosen.get('positive_label')))} when its probability is at least "
            f"<strong>{r._e(r._num(chosen.get('value'), 2))}</strong>: {r._e(chosen.get('method'))}{r._e(detail)}. "
            "Serving uses the same threshold; the threshold-dependent metrics above (accuracy, F1, precision, "
            "recall, balanced accuracy) are measured at it.</p>"
        )
    per_class = evaluation.get("per_class")
    if per_class:
        rows = [
            (
                r._e(repr(c.get("label"))),
                r._e(r._num(c.get("support"))),
                r._e(r._num(c.get("predicted"))),
                r._e(r._num(c.get("precision"), 3)),
                r._e(r._num(c.get("recall"), 3)),
                r._e(r._num(c.get("f1"), 3)),
            )
            for c in per_class
        ]
        parts.append(
            "<h3>Per class (test split)</h3>"
            + r._table(["class", "rows", "predicted", "precision", "recall", "F1"], rows, cls="per-class")
        )
    matrix = evaluation.get("confusion_matrix")
    if matrix:
        labels = [repr(x) for x in matrix.get("labels") or []]
        cells = matrix.get("rows_actual_columns_predicted") or []
        matrix_rows = [[r._e(f"actual {labels[i]}"), *(r._e(r._num(v)) for v in row)] for i, row in enumerate(cells)]
        parts.append(r._table(["", *(f"predicted {x}" for x in labels)], matrix_rows, cls="confusion"))
    cal = evaluation.get("calibration")
    if cal:
        cal_rows = [
            (
                r._e(f"{b['low']:.1f}-{b['high']:.1f}"),
                r._e(r._num(b.get("rows"))),
                r._e(r._num(b.get("predicted"), 3)),
                r._e(r._num(b.get("observed"), 3)),
            )
            for b in cal.get("bins") or []
        ]
        parts.append(
            "<h3>Calibration</h3>"
            f"<p>{r._e(cal.get('what', ''))}: expected calibration error "
            f"<strong>{r._e(r._num(cal.get('ece'), 3))}</strong>, Brier score {r._e(r._num(cal.get('brier'), 3))} "
            f"(lower is better), on {r._e(r._num(cal.get('rows')))} test rows.</p>"
            + r._table(["bin", "rows", "mean predicted", "observed"], cal_rows, cls="calibration")
        )
    elif evaluation.get("calibration", "absent") is None:
        parts.append("<h3>Calibration</h3>" + r._empty("Not applicable: a regression model predicts values."))
    return "".join(parts)


def champion_figures(run: Mapping[str, Any]) -> str:
    """The deployed champion's own evaluation (every metric, on its own test split)."""
    champ = run.get("champion")
    if not champ:
        return ""
    evaluation = champ.get("evaluation") or {}
    _, metrics = r._metric_section(evaluation)
    second = evaluation.get("second_metric") or {}
    rows = [(r._e(name), r._e(r._num((e or {}).get("value")))) for name, e in metrics.items()]
    if second.get("name") and second["name"] not in metrics:
        rows.append((r._e(second["name"]), r._e(r._num(second.get("value")))))
    test_rows = evaluation.get("test_rows")
    note = (
        f"Version {champ.get('version')} ({champ.get('approval', 'Approved')}), measured by its own run on its "
        f"{r._num(test_rows)} test rows (another batch: compare with care; the gate compares on the gate metric)."
    )
    return (
        "<h3>Champion's figures</h3>"
        + f'<p class="muted">{r._e(note)}</p>'
        + (r._table(["metric", "champion"], rows, cls="champion-metrics") if rows else r._empty("No metrics."))
    )


def _short(value: Any) -> str:
    """A statistic in 4 significant digits, without exponent or thousands separator (years stay 2024)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return r.DASH
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def baseline_section(run: Mapping[str, Any]) -> str:
    """Per-feature summary of the drift baseline (``baseline/statistics.json`` of the evaluation)."""
    directory = run.get("evaluation_dir")
    path = Path(directory) / "baseline" / "statistics.json" if directory is not None else None
    if path is None or not path.is_file():
        return r._section("baseline", "Drift baseline", r._empty("No baseline statistics in this run."))
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return r._section("baseline", "Drift baseline", r._empty(f"{path.name} cannot be read."))
    rows = []
    for feature in stats.get("features") or []:
        num = feature.get("numerical_statistics")
        text = feature.get("string_statistics")
        common = (num or text or {}).get("common") or {}
        present, missing = int(common.get("num_present") or 0), int(common.get("num_missing") or 0)
        share = missing / (present + missing) if present + missing else 0.0
        if num:
            summary = (
                f"mean {_short(num.get('mean'))}, std. dev. {_short(num.get('std_dev'))}, "
                f"range {_short(num.get('min'))} to {_short(num.get('max'))}"
            )
        else:
            buckets = ((text or {}).get("distribution") or {}).get("categorical", {}).get("buckets") or []
            top = sorted(buckets, key=lambda b: -int(b.get("count", 0)))[:3]
            summary = f"{(text or {}).get('distinct_count', len(buckets))} values; top: " + ", ".join(
                f"{b.get('value')} ({int(b.get('count', 0)):,})" for b in top
            )
        rows.append(
            (
                r._code(feature.get("name")),
                r._e(feature.get("role", "")),
                r._e(feature.get("inferred_type", "")),
                r._e(f"{share:.1%}"),
                r._e(summary),
            )
        )
    dataset = stats.get("dataset") or {}
    note = (
        f"Statistics of {r._num(dataset.get('item_count'))} training rows: what serving traffic is compared with "
        "(PSI > 0.2 on a feature, or more than 5% unseen values in a closed vocabulary, counts as drift)."
    )
    return r._section(
        "baseline",
        "Drift baseline",
        f'<p class="muted">{r._e(note)}</p>'
        + r._table(["column", "role", "type", "missing", "summary"], rows, cls="baseline"),
    )


# --- what the local runtime knows for the card ---------------------------------------------------------


def card_inputs(runtime: Any, team: str, package: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :func:`flywheel.report.run_report` keyword arguments of the model card for a run of ``team``
    whose registered package is ``package`` (None when nothing was registered): the team's card fields and
    contract, every version of its group, and the deployed champion's own evaluation."""
    from botocore.exceptions import ClientError

    from flywheel.errors import FlywheelError
    from lambdas import lifecycle

    config = runtime.team_config(team)
    out: dict[str, Any] = {
        "card": {"description": config.description, "owner": config.owner, "intended_use": config.intended_use},
    }
    to_json = getattr(config.contract, "to_json", None)
    if callable(to_json):
        out["contract_spec"] = json.loads(to_json())
    deployment = runtime.state.deployment(team) or {}
    deployed = deployment.get("ModelPackageArn")
    try:
        packages = runtime.packages(team)
    except (ClientError, FlywheelError):
        packages = []
    out["group_versions"] = [
        {
            "version": int(p.get("ModelPackageVersion", 0)),
            "approval": p.get("ModelApprovalStatus", ""),
            "deployed": p.get("ModelPackageArn") == deployed,
        }
        for p in packages
    ]
    if deployed and (package is None or deployed != package.get("ModelPackageArn")):
        try:
            champion = runtime.aws.client("sagemaker").describe_model_package(ModelPackageName=deployed)
            uri = lifecycle.evaluation_uri(champion)
            evaluation = lifecycle.read_s3_json(runtime.aws.client("s3"), uri) if uri else None
        except (ClientError, ValueError, KeyError):
            evaluation = None
        if evaluation:
            out["champion"] = {
                "version": champion.get("ModelPackageVersion"),
                "approval": champion.get("ModelApprovalStatus"),
                "evaluation": evaluation,
            }
    return out


#: The model card's name next to the package's ``evaluation.json`` (its ModelMetrics' folder).
CARD_FILE = "model-card.html"


def card_uri(package: Mapping[str, Any]) -> str | None:
    """Where the model card of ``package`` is stored: next to its registered ``evaluation.json``."""
    from lambdas import lifecycle

    uri = lifecycle.evaluation_uri(package)
    return uri.rsplit("/", 1)[0] + "/" + CARD_FILE if uri else None


def store_with_package(runtime: Any, outcome: Any, path: Path) -> str | None:
    """Upload the card next to the registered package's ``evaluation.json`` (same bucket, key and KMS key
    as the evaluation); returns its URI, None when the run registered nothing or the upload failed."""
    from botocore.exceptions import ClientError

    import naming

    uri = card_uri(outcome.package) if outcome.package else None
    if uri is None:
        return None
    bucket, key = naming.split_s3_uri(uri)
    platform = runtime.resources(outcome.team).platform
    try:
        runtime.aws.client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType="text/html",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=platform.keys["reports"],
        )
    except ClientError:
        return None
    return uri
