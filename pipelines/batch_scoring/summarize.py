"""Summarize step: count a scoring run's predictions against its prepared rows; write ``summary.json``.

SageMaker Processing contract (see README.md)::

    python3 summarize.py --manifest-dir DIR --predictions-dir DIR --output-dir DIR
                         [--model-package-arn ARN] [--input-uri S3_URI]

``--manifest-dir`` holds ``status.json`` of ``prepare.py``; ``--predictions-dir`` the transform's output
(``<file>.out``: one line per scored row, ``token,<model output columns>``). ``summary.json`` (under
``--output-dir``) records ``rows_in``, ``rows_prepared``, ``rows_rejected``, ``rejected`` (reason →
count), ``rows_scored``, ``malformed`` (lines whose first field is not a token), ``passed`` (every
prepared row has exactly one well-formed prediction), ``summary`` (one line a person reads; the
pipeline's ``ScoringFailed`` step shows it), the model package and the input. The same counts are
printed as one JSON line (``flywheel_batch_scoring``) to the job's log.

Exit 0 whenever the summary could be written (``RowCountCheck`` decides on ``passed``); 2 when the
manifest is missing or unreadable.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

TOKEN = re.compile(r"^[0-9a-f]{32}$")
STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.json"
PREDICTION_SUFFIX = ".out"


def count_predictions(predictions_dir: Path) -> tuple[int, int, int]:
    """``(lines, malformed lines, files)`` of the transform's ``*.out`` files under ``predictions_dir``."""
    lines = malformed = files = 0
    for path in sorted(predictions_dir.rglob(f"*{PREDICTION_SUFFIX}")):
        files += 1
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                lines += 1
                first = line.split(",", 1)[0].strip().strip('"')
                if not TOKEN.match(first):
                    malformed += 1
    return lines, malformed, files


def summarize(
    status: dict[str, Any], predictions_dir: Path, *, model_package_arn: str, input_uri: str
) -> dict[str, Any]:
    """The run's summary from the prepare status and the predictions."""
    rows_prepared = int(status.get("rows_prepared", 0))
    rows_scored, malformed, files = count_predictions(predictions_dir) if predictions_dir.is_dir() else (0, 0, 0)
    problems = []
    if rows_scored != rows_prepared:
        problems.append(f"{rows_scored} prediction(s) for {rows_prepared} prepared row(s)")
    if malformed:
        problems.append(f"{malformed} prediction line(s) do not start with an id token")
    passed = not problems and bool(status.get("passed"))
    if passed:
        text = f"scored {rows_scored} of {status.get('rows_in', rows_scored)} row(s)"
        if status.get("rows_rejected"):
            text += f"; {status['rows_rejected']} row(s) not scored ({_reasons(status.get('rejected') or {})})"
    else:
        text = "; ".join(problems or [str(status.get("summary") or "the batch was not prepared")])
    return {
        "passed": passed,
        "rows_in": int(status.get("rows_in", 0)),
        "rows_prepared": rows_prepared,
        "rows_rejected": int(status.get("rows_rejected", 0)),
        "rejected": dict(status.get("rejected") or {}),
        "rows_scored": rows_scored,
        "malformed": malformed,
        "prediction_files": files,
        "model_package_arn": model_package_arn,
        "input_uri": input_uri,
        "summary": text,
    }


def _reasons(rejected: dict[str, Any]) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in sorted(rejected.items()))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--manifest-dir", required=True)
    p.add_argument("--predictions-dir", required=True)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--model-package-arn", default="")
    p.add_argument("--input-uri", default="")
    args = p.parse_args(argv)
    try:
        status = json.loads((Path(args.manifest_dir) / STATUS_FILE).read_text(encoding="utf-8"))
        if not isinstance(status, dict):
            raise ValueError("status.json is not an object")
    except (OSError, ValueError) as exc:
        print(f"summarize: cannot read the prepare manifest: {exc}", file=sys.stderr)
        return 2
    summary = summarize(
        status, Path(args.predictions_dir), model_package_arn=args.model_package_arn, input_uri=args.input_uri
    )
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    counts = {k: summary[k] for k in ("rows_in", "rows_prepared", "rows_rejected", "rows_scored", "malformed")}
    print(json.dumps({"flywheel_batch_scoring": {**counts, "passed": summary["passed"]}}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
