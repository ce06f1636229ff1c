"""Batch transform jobs run locally through the model's inference contract.

:func:`run_transform_job` takes a resolved ``CreateTransformJob`` request and the model's container
(:func:`model_container`: ``DescribeModel``'s primary container, or the model package's first container
when the model names a package) and does what SageMaker does, with local processes for the instances:

* the model artifact (``ModelDataUrl``) is unpacked into each instance's ``/opt/ml/model``; the code is
  ``SAGEMAKER_SUBMIT_DIRECTORY`` (``/opt/ml/model/code``) / ``SAGEMAKER_PROGRAM`` of the container's
  ``Environment`` (the framework containers' contract) or, for a model on SageMaker's XGBoost image without
  a ``SAGEMAKER_PROGRAM`` (a built-in algorithm model), the built-in XGBoost inference contract
  (:mod:`.algorithms.xgboost_container`), run by :mod:`flywheel.executor.transform_worker` — with AWS
  credentials only if the model is not network-isolated (see :mod:`.jobs`);
* the ``S3Prefix`` input's objects are split across ``InstanceCount`` instances (every N-th object);
  records are split by ``SplitType`` and sent in ``BatchStrategy`` mini-batches up to
  ``MaxPayloadInMB``; ``DataProcessing`` filters and ``JoinSource: Input`` apply to CSV records;
* each input object ``<relative>`` becomes ``<S3OutputPath>/<relative>.out`` (SSE-KMS with the output's
  ``KmsKeyId``), so the output mirrors the input layout, as SageMaker's does.

Returned properties are ``DescribeTransformJob``-shaped (``TransformOutput.S3OutputPath`` is what later
steps reference) plus ``LocalRecordCounts`` and ``LocalTimings``. Nothing here is specific to one
template; the inference code is the model's own (what ``flywheel serve`` runs too).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from flywheel.errors import StepFailed
from flywheel.executor.algorithms import xgboost_container
from flywheel.executor.images import is_builtin_xgboost
from flywheel.executor.jobs import Instance, JobRunner, local_path, now, safe_root
from flywheel.executor.s3io import split_uri

WORKER: Final = Path(__file__).resolve().parent / "transform_worker.py"
MODEL_DIR: Final = "/opt/ml/model"
DEFAULT_SUBMIT_DIRECTORY: Final = "/opt/ml/model/code"
DEFAULT_PROGRAM: Final = "inference.py"
_SPLIT_TYPES: Final = ("None", "Line")
_STRATEGIES: Final = ("MultiRecord", "SingleRecord")


def builtin_inference(container: Mapping[str, Any]) -> tuple[Path, str] | None:
    """``(code folder, program)`` of the built-in inference contract a model's container runs, or None when
    the model brings its own code: a model on SageMaker's XGBoost image without ``SAGEMAKER_PROGRAM`` serves
    through :mod:`.algorithms.xgboost_container` (what ``flywheel serve`` can load too)."""
    environment = container.get("Environment") or {}
    if is_builtin_xgboost(str(container.get("Image") or "")) and not environment.get("SAGEMAKER_PROGRAM"):
        return xgboost_container.PATH.parent, xgboost_container.PATH.name
    return None


def model_container(sagemaker: Any, model_name: str) -> dict[str, Any]:
    """The container a model runs (``Image``, ``ModelDataUrl``, ``Environment``): its primary container or
    first container, resolved through ``DescribeModelPackage`` when it names a ``ModelPackageName``.

    Raises StepFailed as ``CreateTransformJob`` would for a missing model or one without an artifact.
    """
    from botocore.exceptions import ClientError

    try:
        model = sagemaker.describe_model(ModelName=model_name)
    except ClientError as exc:
        raise StepFailed(f"ValidationException: Could not find model {model_name!r}: {exc}") from exc
    container = dict(model.get("PrimaryContainer") or next(iter(model.get("Containers") or []), {}) or {})
    package = container.get("ModelPackageName")
    if package:
        try:
            described = sagemaker.describe_model_package(ModelPackageName=package)
        except ClientError as exc:
            raise StepFailed(f"ValidationException: model {model_name}: its package {package}: {exc}") from exc
        first: dict[str, Any] = next(iter((described.get("InferenceSpecification") or {}).get("Containers") or []), {})
        container = {**first, **{k: v for k, v in container.items() if k == "Environment"}}
        container["Environment"] = {**(first.get("Environment") or {}), **(container.get("Environment") or {})}
    if not container.get("ModelDataUrl"):
        raise StepFailed(f"ValidationException: model {model_name} has no ModelDataUrl to transform with")
    container["ModelName"] = model_name
    container["EnableNetworkIsolation"] = bool(model.get("EnableNetworkIsolation"))
    container["VpcConfig"] = model.get("VpcConfig")
    return container


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    text = str(value)
    if text not in allowed:
        raise StepFailed(f"ValidationException: {where} {text!r} is not supported locally; use {', '.join(allowed)}")
    return text


def run_transform_job(
    runner: JobRunner,
    job_name: str,
    request: Mapping[str, Any],
    job_root: Path,
    container: Mapping[str, Any],
    *,
    keep_data: bool = False,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Run a resolved ``CreateTransformJob`` request with the model ``container``; DescribeTransformJob-shaped
    properties. Unless ``keep_data``, the instances' local inputs and model copies are removed afterwards.
    ``notes`` (executor warnings) open each instance's log."""
    root = safe_root(job_root)
    try:
        return _run(runner, job_name, dict(request), root, container, notes)
    finally:
        if not keep_data:
            for path in [*root.glob("*/opt"), root / ".s3cache"]:
                shutil.rmtree(path, ignore_errors=True)


def _run(
    runner: JobRunner,
    job_name: str,
    request: dict[str, Any],
    root: Path,
    container: Mapping[str, Any],
    notes: Sequence[str],
) -> dict[str, Any]:
    started, clock = now(), time.perf_counter()
    source = ((request.get("TransformInput") or {}).get("DataSource") or {}).get("S3DataSource") or {}
    if source.get("S3DataType", "S3Prefix") != "S3Prefix":
        raise StepFailed(f"ValidationException: S3DataType {source.get('S3DataType')} (only S3Prefix locally)")
    transform_input = request.get("TransformInput") or {}
    if str(transform_input.get("CompressionType", "None")) != "None":
        raise StepFailed(f"ValidationException: CompressionType {transform_input['CompressionType']} (only None)")
    output = request.get("TransformOutput") or {}
    output_path = output.get("S3OutputPath")
    if not output_path:
        raise StepFailed("ValidationException: TransformOutput.S3OutputPath is required")
    split_uri(str(output_path))
    resources = request.get("TransformResources") or {}
    count = int(resources.get("InstanceCount", 1))
    if count < 1:
        raise StepFailed(f"ValidationException: TransformResources.InstanceCount {count} must be >= 1")
    objects = runner.transfers.list_prefix(str(source.get("S3Uri", "")))
    if not objects:
        raise StepFailed(f"ClientError: no S3 objects found under S3 URL {source.get('S3Uri')}")
    environment = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
    environment.update({str(k): str(v) for k, v in (request.get("Environment") or {}).items()})
    builtin = builtin_inference({**container, "Environment": environment})
    program = builtin[1] if builtin else environment.get("SAGEMAKER_PROGRAM", DEFAULT_PROGRAM)
    submit_dir = str(builtin[0]) if builtin else environment.get("SAGEMAKER_SUBMIT_DIRECTORY", DEFAULT_SUBMIT_DIRECTORY)
    if submit_dir.startswith("s3://"):
        raise StepFailed("ValidationException: an s3:// SAGEMAKER_SUBMIT_DIRECTORY is not supported locally")
    spec_base = {
        "program": program,
        "content_type": str(transform_input.get("ContentType") or "text/csv"),
        "accept": str(output.get("Accept") or "text/csv"),
        "split_type": _choice(transform_input.get("SplitType", "None"), _SPLIT_TYPES, "SplitType"),
        "batch_strategy": _choice(request.get("BatchStrategy", "MultiRecord"), _STRATEGIES, "BatchStrategy"),
        "max_payload_mb": int(request.get("MaxPayloadInMB", 6)),
        "assemble_with": str(output.get("AssembleWith", "None")),
        "data_processing": request.get("DataProcessing") or {},
    }

    archive = root / ".s3cache" / "model.tar.gz"
    bucket, key = split_uri(str(container["ModelDataUrl"]))
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        runner.transfers.s3.download_file(bucket, key, str(archive))
    except Exception as exc:  # botocore ClientError and transfer errors alike
        raise StepFailed(f"ClientError: cannot download the model artifact {container['ModelDataUrl']}: {exc}") from exc

    hosts = [f"algo-{i + 1}" for i in range(min(count, len(objects)))]
    instances = [Instance(host, root / host, root / "logs" / f"{host}.log") for host in hosts]
    specs: dict[str, Path] = {}
    for index, inst in enumerate(instances):
        model_dir = local_path(MODEL_DIR, inst.root)
        model_dir.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(archive, mode="r:*") as tar:
                tar.extractall(model_dir, filter="data")  # refuses absolute paths, "..", links out
        except (tarfile.TarError, OSError) as exc:
            raise StepFailed(f"ClientError: the model artifact is not a safe, readable tar.gz: {exc}") from exc
        input_dir = inst.root / "input"
        mine = objects[index :: len(instances)]
        for obj in mine:
            runner.transfers.download(obj, input_dir)
        spec = {
            **spec_base,
            "submit_dir": runner.view(submit_dir, inst.root),
            "model_dir": runner.view(MODEL_DIR, inst.root),
            "input_dir": str(input_dir),
            "output_dir": str(inst.root / "output"),
            "files": [obj.relative for obj in mine],
            "counts_file": str(inst.root / "counts.json"),
            "failure_file": runner.view("/opt/ml/output/failure", inst.root),
        }
        specs[inst.host] = inst.root / "spec.json"
        specs[inst.host].write_text(json.dumps(spec), encoding="utf-8")
    timings = {"download_s": time.perf_counter() - clock}
    clock = time.perf_counter()
    isolated = bool(container.get("EnableNetworkIsolation"))
    base_env = runner.base_environment(len(instances), network_isolated=isolated)
    runner.run_instances(
        instances,
        command=lambda inst: ["python3", str(WORKER), str(specs[inst.host])],
        environment=lambda inst: {**base_env, **{k: runner.view(v, inst.root) for k, v in environment.items()}},
        cwd=lambda inst: inst.root,
        timeout=float(86400),
        network_isolated=isolated,
        notes=notes,
    )
    timings["run_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    counts = {"files": 0, "input_records": 0, "output_records": 0}
    kms_key = output.get("KmsKeyId")
    for inst in instances:
        for name, value in json.loads((inst.root / "counts.json").read_text(encoding="utf-8")).items():
            counts[name] = counts.get(name, 0) + int(value)
        runner.transfers.upload_dir(inst.root / "output", str(output_path), kms_key)
    timings["upload_s"] = time.perf_counter() - clock
    return {
        **request,
        "TransformJobName": job_name,
        "TransformJobStatus": "Completed",
        "ModelName": container.get("ModelName", request.get("ModelName")),
        "TransformStartTime": started.isoformat(),
        "TransformEndTime": now().isoformat(),
        "LocalRecordCounts": counts,
        "LocalWarnings": list(notes),
        "LocalTimings": timings,
        "LogFiles": [str(inst.log) for inst in instances],
    }
