"""The local "container" of a batch transform: a model's inference code over local input files.

Run by :mod:`flywheel.executor.transform` as its own process (network-isolated like the container: no
AWS credentials in its environment), with the standard library and whatever the model's code imports
(the framework libraries the local environment pins). It honours the SageMaker inference contract the
framework containers implement: ``SAGEMAKER_SUBMIT_DIRECTORY`` on ``sys.path``, ``SAGEMAKER_PROGRAM``
imported, ``model_fn(model_dir)`` once, then ``input_fn(body, content_type)`` → ``predict_fn(data,
model)`` → ``output_fn(prediction, accept)`` per mini-batch — and the batch-transform side of the
contract: records split by ``SplitType`` (``Line`` or ``None``), ``SingleRecord``/``MultiRecord``
mini-batches up to ``MaxPayloadInMB``, ``DataProcessing`` (``InputFilter``, ``JoinSource: Input``,
``OutputFilter``) for CSV records, and one ``<file>.out`` per input file (``AssembleWith: Line``).

Usage (one JSON argument, the job spec written by the executor)::

    python3 transform_worker.py SPEC.json

A record count mismatch (the model answered a different number of records than it was sent, which
SageMaker refuses when joining) or a failing inference function ends the process with exit code 1 and a
reason in ``/opt/ml/output/failure`` (the path in the spec), as a container does.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

CSV = "text/csv"
MB = 1024 * 1024


class TransformError(Exception):
    """A failure of the transform (its message becomes the job's FailureReason)."""


def select(fields: list[str], expression: str | None) -> list[str]:
    """The fields a JSONPath filter selects from one CSV record (``$``, ``$[i]``, ``$[i,j]``, ``$[a:b]``,
    unions such as ``$[0,5:]``, negative indexes) — the subset SageMaker documents for CSV records."""
    if expression in (None, "", "$"):
        return list(fields)
    text = str(expression).strip()
    if not (text.startswith("$[") and text.endswith("]")):
        raise TransformError(f"filter {expression!r}: only $, $[i], $[i,j] and $[a:b] are supported for CSV records")
    out: list[str] = []
    for part in text[2:-1].split(","):
        part = part.strip()
        try:
            if ":" in part:
                start, _, stop = part.partition(":")
                out.extend(fields[slice(int(start) if start else None, int(stop) if stop else None)])
            else:
                out.append(fields[int(part)])
        except ValueError:
            raise TransformError(f"filter {expression!r}: {part!r} is not an index or a slice") from None
        except IndexError:
            raise TransformError(
                f"filter {expression!r}: index {part} is out of range for a record of {len(fields)} field(s)"
            ) from None
    return out


def _csv_fields(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _csv_line(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def load_program(submit_dir: Path, program: str) -> Any:
    """Import ``program`` (``inference.py``) from ``submit_dir`` as the framework container does."""
    sys.path.insert(0, str(submit_dir))
    module = importlib.import_module(Path(program).stem)
    for name in ("model_fn", "input_fn", "predict_fn", "output_fn"):
        if not callable(getattr(module, name, None)):
            raise TransformError(f"{program} does not define {name}()")
    return module


def batches(records: list[str], strategy: str, max_bytes: int) -> list[list[str]]:
    """Mini-batches of records: one per record (``SingleRecord``) or as many as fit ``max_bytes``."""
    if strategy == "SingleRecord":
        return [[r] for r in records]
    out: list[list[str]] = []
    current: list[str] = []
    size = 0
    for record in records:
        length = len(record.encode("utf-8")) + 1
        if length > max_bytes:
            raise TransformError(f"a record of {length} bytes exceeds MaxPayloadInMB ({max_bytes // MB} MB)")
        if current and size + length > max_bytes:
            out.append(current)
            current, size = [], 0
        current.append(record)
        size += length
    if current:
        out.append(current)
    return out


def transform_file(
    module: Any, model: Any, path: Path, spec: dict[str, Any], bodies: list[str] | None = None
) -> tuple[list[str], int]:
    """``(output records, input records)`` of one input file; ``bodies`` (if given) receives the model's
    raw answer per mini-batch (what ``AssembleWith: None`` concatenates)."""
    text = path.read_text(encoding="utf-8")
    content_type, accept = spec["content_type"], spec["accept"]
    processing = spec.get("data_processing") or {}
    input_filter, output_filter = processing.get("InputFilter"), processing.get("OutputFilter")
    join = processing.get("JoinSource", "None") == "Input"
    if spec["split_type"] == "None":
        if input_filter not in (None, "$") or join:
            raise TransformError("InputFilter and JoinSource need SplitType Line")
        body = module.output_fn(module.predict_fn(module.input_fn(text, content_type), model), accept)
        return [body if isinstance(body, str) else bytes(body).decode("utf-8")], 1
    records = [line for line in text.splitlines() if line.strip()]
    uses_csv = bool(input_filter not in (None, "$") or output_filter not in (None, "$") or join)
    if uses_csv and content_type.split(";")[0].strip() != CSV:
        raise TransformError(f"DataProcessing filters are supported locally for {CSV} records, not {content_type}")
    outputs: list[str] = []
    for batch in batches(records, spec["batch_strategy"], spec["max_payload_mb"] * MB):
        fields = [_csv_fields(r) for r in batch] if uses_csv else []
        sent = [_csv_line(select(f, input_filter)) for f in fields] if uses_csv else batch
        result = module.output_fn(module.predict_fn(module.input_fn("\n".join(sent), content_type), model), accept)
        if isinstance(result, tuple):
            result = result[0]
        answer = result if isinstance(result, str) else bytes(result).decode("utf-8")
        if bodies is not None:
            bodies.append(answer)
        lines = [line for line in answer.splitlines() if line.strip()]
        if len(lines) != len(batch):
            raise TransformError(
                f"{path.name}: the model returned {len(lines)} record(s) for a mini-batch of {len(batch)}; "
                "a transform joins records one to one"
            )
        for i, line in enumerate(lines):
            if not uses_csv:
                outputs.append(line)
                continue
            joined = [*fields[i], *_csv_fields(line)] if join else _csv_fields(line)
            outputs.append(_csv_line(select(joined, output_filter)))
    return outputs, len(records)


def run(spec: dict[str, Any]) -> dict[str, int]:
    """Transform every file of the spec; returns the record counts."""
    module = load_program(Path(spec["submit_dir"]), spec["program"])
    model = module.model_fn(spec["model_dir"])
    input_dir, output_dir = Path(spec["input_dir"]), Path(spec["output_dir"])
    counts = {"files": 0, "input_records": 0, "output_records": 0}
    for relative in spec["files"]:
        bodies: list[str] = []
        outputs, seen = transform_file(module, model, input_dir / relative, spec, bodies)
        target = output_dir / f"{relative}.out"
        target.parent.mkdir(parents=True, exist_ok=True)
        processing = spec.get("data_processing") or {}
        rebuilt = processing.get("JoinSource", "None") == "Input" or processing.get("OutputFilter") not in (None, "$")
        if spec["assemble_with"] == "Line":
            text = "".join(f"{record}\n" for record in outputs)
        elif spec["split_type"] == "Line" and not rebuilt:
            text = "".join(bodies)  # AssembleWith None: the model's answers back to back, as SageMaker writes them
        else:
            text = "".join(outputs)
        target.write_text(text, encoding="utf-8")
        counts["files"] += 1
        counts["input_records"] += seen
        counts["output_records"] += len(outputs)
    Path(spec["counts_file"]).write_text(json.dumps(counts), encoding="utf-8")
    return counts


def main(argv: list[str]) -> int:
    """Entry point: ``transform_worker.py SPEC.json``."""
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        counts = run(spec)
    except Exception as exc:
        traceback.print_exc()
        reason = str(exc) if isinstance(exc, TransformError) else f"{type(exc).__name__}: {exc}"
        failure = Path(spec["failure_file"])
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(reason[:1024], encoding="utf-8")
        return 1
    print(json.dumps({"transform": counts}), flush=True)
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    raise SystemExit(main(sys.argv[1:]))
