"""``flywheel monitor``: the drift monitor of ``pipelines/monitor/drift.py`` on locally captured traffic.

The same code the scheduled processing job runs, on the same inputs: the baseline registered with the
deployed package (``DriftCheckBaselines.ModelDataQuality``, read from the embedded registry and S3) and
the endpoint's data capture in SageMaker's layout (``naming.capture_prefix`` of the capture zone, written
by the local endpoint: :mod:`flywheel.capture`). The report goes to the reports zone under
``naming.drift_prefix(endpoint)`` (and next to the state), and, when features drift, the local
alarm message names the alarm the deployed stack raises (``naming.drift_alarm_name``).

For the demo: :func:`drift_section` is the report's "Data drift" section and :func:`shift_samples` the
traffic shift of ``flywheel demo --drift`` (one numeric feature moved by :data:`SHIFT_STD` standard
deviations, so the finding flips and names it).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import naming
from flywheel.embedded import NAMES
from flywheel.errors import FlywheelError
from pipelines.monitor import drift

if TYPE_CHECKING:
    from flywheel.runtime import LocalRuntime

#: ``flywheel demo --drift`` moves one numeric feature by this many baseline standard deviations.
SHIFT_STD: Final = 1.0


class MonitorError(FlywheelError):
    """The monitor cannot run (nothing deployed, no baseline, unreadable capture); the message says why."""


@dataclass
class MonitorResult:
    """One monitor run: the report (``drift.compare``) and where its inputs and outputs are."""

    team: str
    endpoint: str
    report: dict[str, Any]
    baseline_uri: str
    capture_uri: str
    package_version: int | None
    report_path: Path | None = None
    report_uri: str | None = None

    @property
    def alarm(self) -> str | None:
        """The local alarm message when the drift alarm would fire (as many drifted features as its
        threshold), else None. "Not enough data" never fires it and never passes."""
        report = self.report
        if report["status"] != drift.DRIFT:
            return None
        name = naming.drift_alarm_name(self.endpoint)
        return (
            f"ALARM {name}: {len(report['drifted_features'])} feature(s) drifted in the window of "
            f"{report['rows']:,} captured rows ({', '.join(report['drifted_features'])}); "
            f"dataset drift: {'yes' if report['dataset_drift'] else 'no'} "
            f"({report['drift_share']:.0%} of columns, threshold {drift.DATASET_DRIFT_SHARE:.0%})"
        )


def baseline_uris(package: dict[str, Any]) -> tuple[str, str | None]:
    """``(statistics, constraints)`` S3 URIs registered with a package; MonitorError naming the fix if absent."""
    quality = ((package.get("DriftCheckBaselines") or {}).get("ModelDataQuality")) or {}
    statistics = (quality.get("Statistics") or {}).get("S3Uri")
    if not statistics:
        raise MonitorError(
            f"model package version {package.get('ModelPackageVersion')} has no registered baseline statistics "
            "(DriftCheckBaselines.ModelDataQuality): register it from a pipeline whose evaluation writes them"
        )
    return str(statistics), (quality.get("Constraints") or {}).get("S3Uri")


def _read_json(s3: Any, uri: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    bucket, key = naming.split_s3_uri(uri)
    try:
        data = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        raise MonitorError(f"cannot read {uri}: {exc.response.get('Error', {}).get('Code', 'error')}") from None
    except ValueError:
        raise MonitorError(f"{uri} is not JSON") from None
    if not isinstance(data, dict):
        raise MonitorError(f"{uri} is not a JSON object")
    return data


def capture_records(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every capture record under ``s3://bucket/prefix`` (object key order, as the job reads its input)."""
    keys = sorted(
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
        if o["Key"].endswith(".jsonl")
    )
    for key in keys:
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        yield from drift.iter_records(text.splitlines())


def run_monitor(
    runtime: LocalRuntime,
    team: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_rows: int | None = None,
    psi: bool | None = None,
    write: bool = True,
) -> MonitorResult:
    """Compare the team's captured traffic (``[since, until)``, UTC; default: all of it) with the baseline
    of the deployed package; with ``write``, store ``report.json`` in the reports zone and the state dir."""
    settings = runtime.team_config(team).monitoring.drift
    options = drift.MonitorSettings(
        min_rows=settings.min_rows if min_rows is None else min_rows, psi=settings.psi if psi is None else psi
    )
    res = runtime.resources(team)  # provisions on first use: the registry is restored from the state store
    record = runtime.deployment(team)
    sm, s3 = runtime.aws.client("sagemaker"), runtime.aws.client("s3")
    package = sm.describe_model_package(ModelPackageName=record["ModelPackageArn"])
    statistics_uri, constraints_uri = baseline_uris(package)
    statistics = _read_json(s3, statistics_uri)
    constraints = _read_json(s3, constraints_uri) if constraints_uri else None
    endpoint = NAMES.endpoint(team)
    bucket = res.platform.buckets["capture"]
    prefix = naming.capture_prefix(endpoint)
    # The endpoint captures to S3 on a shared embedded AWS (`flywheel up`), else to the state folder
    # (`flywheel serve` in-process: flywheel.capture.LocalCaptureSink); the window is both.
    local = Path(runtime.state.root) / "capture" / endpoint
    sources = [naming.s3_uri(bucket, prefix)] + ([str(local)] if local.is_dir() else [])

    def records() -> Iterator[dict[str, Any]]:
        yield from capture_records(s3, bucket, prefix)
        if local.is_dir():
            yield from drift.read_capture_dir(local)

    try:
        report = drift.run(statistics, records(), options, constraints=constraints, since=since, until=until)
    except drift.MonitorInputError as exc:
        raise MonitorError(f"drift monitor: {exc}") from None
    if report["records"] == 0:
        report["findings"].append(
            {
                "kind": "no_capture",
                "column": None,
                "severity": "info",
                "message": f"no captured requests in {' or '.join(sources)}: serve the model (`flywheel serve --team "
                f"{team}`, then `flywheel invoke`) or run `flywheel demo` first",
            }
        )
    computed = datetime.now(UTC)
    report.update(
        team=team,
        endpoint=endpoint,
        computed_at=computed.strftime("%Y-%m-%dT%H:%M:%SZ"),
        package_version=package.get("ModelPackageVersion"),
        baseline=statistics_uri,
    )
    result = MonitorResult(
        team, endpoint, report, statistics_uri, " + ".join(sources), int(package["ModelPackageVersion"])
    )
    if write:
        stamp = computed.strftime("%Y%m%dT%H%M%S%fZ")
        body = json.dumps(report, indent=1, default=drift._jsonable) + "\n"
        folder = runtime.state.root / "drift" / team
        folder.mkdir(parents=True, exist_ok=True)
        result.report_path = folder / f"{stamp}.json"
        result.report_path.write_text(body, encoding="utf-8")
        reports = res.platform.buckets["reports"]
        key = f"{naming.drift_prefix(endpoint)}{stamp}/report.json"
        s3.put_object(
            Bucket=reports,
            Key=key,
            Body=body.encode("utf-8"),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=res.platform.keys["reports"],
        )
        result.report_uri = naming.s3_uri(reports, key)
    return result


def report_lines(result: MonitorResult) -> list[str]:
    """What ``flywheel monitor`` prints: the verdict, each finding, the alarm message if it fires."""
    lines = [f"Drift monitor of {result.endpoint} (version {result.package_version}): {drift.summary(result.report)}"]
    for finding in result.report["findings"]:
        lines.append(f"  {finding['severity']}: {finding['message']}")
    if result.alarm:
        lines.append(result.alarm)
    return lines


def drift_section(result: MonitorResult, shifted: str | None = None) -> dict[str, Any]:
    """The report's "Data drift" section (``flywheel.report`` ``extra_sections``)."""
    report = result.report
    rows: list[tuple[str, Any]] = [
        ("verdict", drift.summary(report)),
        ("window", f"{report['rows']:,} captured rows ({report['records']:,} requests) from {result.capture_uri}"),
        ("baseline", f"{result.baseline_uri} (model package version {result.package_version})"),
    ]
    if shifted:
        rows.append(("demo traffic", shifted))
    for name, entry in report["features"].items():
        if entry.get("test"):
            value = (
                f"{entry['test']} {entry['score']:.4g} (threshold {entry['threshold']:g}) → "
                f"{'DRIFT' if entry['drifted'] else 'ok'}; missing {entry['missing_share']:.1%}"
            )
        else:
            value = f"DRIFT ({entry.get('reason')})"
        rows.append((f"feature {name}", value))
    for finding in report["findings"]:
        if finding["kind"] != "drift":
            rows.append((f"finding: {finding['kind']}", finding["message"]))
    rows.append(("alarm", result.alarm or "not fired"))
    if result.report_uri:
        rows.append(("report (S3)", result.report_uri))
    return {"title": "Data drift", "rows": rows}


def shift_feature(statistics: dict[str, Any]) -> tuple[int, str, float, bool]:
    """``(position, name, shift, integral)`` of the feature ``--drift`` moves: the first numeric feature the
    baseline resolves finely (``ColumnReference.resolution``), by :data:`SHIFT_STD` standard deviations."""
    reference = drift.load_reference(statistics)
    for position, (name, ref) in enumerate(reference.items()):
        if ref.kind == "numeric" and ref.std > 0 and ref.resolution >= 5 * drift.MIN_RESOLUTION:
            feat = next(f for f in statistics["features"] if f.get("name") == name)
            integral = feat.get("inferred_type") == "Integral"
            shift = SHIFT_STD * ref.std
            return position, name, float(round(shift)) if integral else shift, integral
    raise MonitorError("the baseline has no finely resolved numeric feature to shift")


def shift_samples(runtime: LocalRuntime, team: str, samples: Path) -> tuple[Path, str]:
    """A copy of the deployment's sample rows with one feature shifted; returns it and a description."""
    record = runtime.deployment(team)
    package = runtime.aws.client("sagemaker").describe_model_package(ModelPackageName=record["ModelPackageArn"])
    statistics = _read_json(runtime.aws.client("s3"), baseline_uris(package)[0])
    position, name, shift, integral = shift_feature(statistics)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in csv.reader(io.StringIO(samples.read_text(encoding="utf-8"))):
        if not row:
            continue
        if position < len(row) and row[position].strip():
            value = float(row[position]) + shift
            row[position] = str(round(value)) if integral else repr(value)
        writer.writerow(row)
    path = samples.with_name("samples-drifted.csv")
    path.write_text(out.getvalue(), encoding="utf-8")
    return path, f"feature {name} shifted by {shift:+g} ({SHIFT_STD:g} baseline standard deviations) by --drift"


def demo_drift(
    runtime: LocalRuntime, team: str, since: datetime, shifted: str | None, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """The demo's monitor run on the traffic it just sent (captured since ``since``): says the verdict and
    the alarm, returns the report section (None, said, when the monitor cannot run)."""
    try:
        result = run_monitor(runtime, team, since=since.replace(microsecond=0))
    except FlywheelError as exc:
        say(f"Drift monitor did not run: {exc}")
        return None
    for line in report_lines(result):
        say(line)
    return drift_section(result, shifted)
