"""The PII scan in the run report: the pipeline's own verdict, and the same scan over what came later.

The preprocessing job writes ``status/pii-scan-<host>.json`` (``pipelines/tabular/pii_scan.py``) before
anything trains; :func:`pii_sections` reads those from the run's status output and, locally, runs the same
scanner over the evaluation report and the endpoint's capture files (which exist only after the
preprocessing job), with the raw batch's identifiers — the report shows both, never a value.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import naming


@contextlib.contextmanager
def step_module(folder: Path, name: str) -> Iterator[ModuleType]:
    """Import step module ``name`` of a template folder (flat sibling imports, as in the container)."""
    path = str(folder)
    sys.path.insert(0, path)
    try:
        yield importlib.import_module(name)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(path)


def _objects(s3: Any, uri: str) -> list[tuple[str, str]]:
    bucket, prefix = naming.split_s3_uri(uri)
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [(bucket, str(o["Key"])) for o in page.get("Contents", [])]
    return out


def pipeline_verdict(s3: Any, record: Any) -> dict[str, Any] | None:
    """The merged ``pii-scan-<host>.json`` of the run's Preprocess step, or None if it wrote none."""
    step = record.step("Preprocess") if hasattr(record, "step") else None
    status_uri = ((step.metadata.get("Outputs") or {}) if step else {}).get("status")
    if not status_uri:
        return None
    hosts = []
    for bucket, key in _objects(s3, status_uri):
        if key.rsplit("/", 1)[-1].startswith("pii-scan-"):
            hosts.append(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    if not hosts:
        return None
    return {
        "passed": all(h.get("passed") for h in hosts),
        "summary": " | ".join(str(h.get("summary", "")) for h in hosts),
        "files": sum(int(h.get("files", 0)) for h in hosts),
        "rows": sum(int(h.get("rows", 0)) for h in hosts),
        "findings": [f for h in hosts for f in h.get("findings", [])],
        "detectors": hosts[0].get("detectors", []),
    }


def later_outputs_scan(aws: Any, outcome: Any, contract: Any, folder: Path, endpoint: str) -> dict[str, Any] | None:
    """The scanner over the run's evaluation outputs and the endpoint's capture files (local only)."""
    if not (folder / "pii_scan.py").is_file() or not outcome.raw_uri:
        return None
    s3 = aws.client("s3")
    step = outcome.execution.step("Evaluate")
    sources = [((step.metadata.get("Outputs") or {}) if step else {}).get("evaluation")]
    capture_bucket = _zone_bucket(aws, "capture")
    sources.append(naming.s3_uri(capture_bucket, naming.capture_prefix(endpoint)) if capture_bucket else None)
    with tempfile.TemporaryDirectory() as tmp, step_module(folder, "pii_scan") as scan:
        root = Path(tmp)
        raw_prefix = outcome.raw_uri if outcome.raw_uri.endswith("/") else outcome.raw_uri.rsplit("/", 1)[0] + "/"
        for bucket, key in _objects(s3, raw_prefix):
            if key.lower().endswith((".csv", ".parquet")):
                target = root / "raw" / key.rsplit("/", 1)[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, key, str(target))
        identifiers, compare = scan.raw_identifiers(root / "raw", contract)
        files = []
        for uri in filter(None, sources):
            for bucket, key in _objects(s3, uri):
                if key.lower().endswith(scan.SCANNED_SUFFIXES):
                    target = root / "later" / bucket / key
                    target.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, key, str(target))
                    files.append((target, f"s3://{bucket}/{key}"))
        report = scan.scan_paths(files, identifiers, compare_tokens=compare)
        return report.to_dict()


def _zone_bucket(aws: Any, zone: str) -> str | None:
    """The local zone bucket if it exists in the embedded AWS."""
    from flywheel.embedded import NAMES

    name = NAMES.bucket(zone)
    try:
        aws.client("s3").head_bucket(Bucket=name)
    except Exception:  # no such bucket (or no access): nothing to scan there
        return None
    return name


def pii_sections(runtime: Any, outcome: Any) -> list[Any]:
    """Report sections (title + rows) for the run's PII scan; [] for a template without one."""
    s3 = runtime.aws.client("s3")
    verdict = pipeline_verdict(s3, outcome.execution)
    if verdict is None:
        return []
    findings = verdict["findings"]
    rows: list[tuple[str, Any]] = [
        ("result", "passed" if verdict["passed"] else "FAILED: training did not run"),
        ("summary", verdict["summary"]),
        ("files / rows scanned", f"{verdict['files']} / {verdict['rows']}"),
        ("detectors", ", ".join(verdict["detectors"])),
        (
            "findings",
            "; ".join(f"{f['file']}: column {f['column']}: {f['count']} {f['detector']}" for f in findings) or "none",
        ),
    ]
    team = runtime.team_config(outcome.team)
    found = runtime.pipeline_template(outcome.execution.pipeline_name)
    template = found[1] if found else team.pipelines[0]
    contract = getattr(team.template_settings(template), "contract", None)
    if contract is not None:
        from flywheel.embedded import NAMES

        later = later_outputs_scan(
            runtime.aws, outcome, contract, team.template(template).folder, NAMES.endpoint(outcome.team)
        )
        if later is not None:
            rows.append(("evaluation report + capture files", later["summary"]))
    return [{"title": "PII scan (verified pseudonymization)", "rows": rows}]
