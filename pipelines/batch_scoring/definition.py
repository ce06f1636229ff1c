"""The SageMaker pipeline definition of the ``batch-scoring`` template (the template's SDK v3 importer).

It turns a frozen :class:`BatchScoringInputs` into the pipeline definition JSON that the CDK puts into
``AWS::SageMaker::Pipeline`` and that the local executor runs step by step (built through
:mod:`pipelines.sdk_offline`, offline and deterministic).

Parameters (a contract with the launcher, :mod:`lambdas.batch_scoring`, and the local runtime)
    ``InputDataUri`` (String, required): the batch to score, a prefix under
    ``s3://<raw_bucket>/<team>/scoring/incoming/`` (``Prepare`` refuses anything else);
    ``ModelName`` (String, required): the SageMaker Model the launcher created from the team's latest
    *Approved* package (network-isolated, in the VPC, running as this pipeline's ``scoring`` role);
    ``ModelPackageArn`` (String, required): that package, recorded in the run's summary;
    ``TransformInstanceType`` (String, default from the team's ``scoring`` settings).

    Never parameters: the allowed input prefix, the PII key's location, the output locations and keys.

Steps
    ``Prepare`` (Processing, scikit-learn image, the ``preprocessing`` role: the only reader of raw
    batches and the PII key) reads the batch, replaces the id with its HMAC token (the same key and
    function as the ``tabular`` template, so a token here is the token in the training data), drops
    direct identifiers, generalizes quasi-identifiers exactly as the model's training data was, and
    writes ``scoring-input/`` (features zone: ``token,<serving columns>`` CSV, no header) and
    ``manifest/`` (reports zone: ``status.json`` with the row counts and the rejected rows' reasons).
    ``InputCheck`` (Condition) continues only with a batch whose columns fit the contract, else
    ``ScoringInputRejected`` (Fail). ``Score`` (Transform) runs the model over ``scoring-input/``:
    ``InputFilter`` ``$[1:]`` sends the model only the serving columns, ``JoinSource: Input`` and
    ``OutputFilter`` ``$[0,<n+1>:]`` keep the token and the model's output columns — predictions land in
    ``predictions/`` of the features zone, encrypted with the team's job key. ``Summarize`` (Processing,
    the ``reporting`` role) counts the predictions, checks them against the prepared rows (one per
    row, each with a well-formed token), and writes ``summary.json`` (reports zone); ``RowCountCheck``
    (Condition) fails the run (``ScoringFailed``) when they differ.

Every job carries the team tag, volume and output KMS keys (the team's job key); the processing jobs
run in the VPC under network isolation; the transform job inherits the VPC and network isolation of
its model (``CreateModel`` ``VpcConfig``/``EnableNetworkIsolation``: the launcher sets both).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from naming import PII_KEY_FILE, PREPROCESSING, S3_SCHEME, pii_key_prefix, scoring_incoming_prefix
from pipelines.sdk_offline import (
    build_offline,
    image_uri,
    object_name,
    pipeline_session,
    role_sentinel,
    sentinel,
    sequence_sentinels,
    uri_sentinel,
)

# The same fixed, hash-verifying entrypoint as the ``tabular`` template (one container contract).
from pipelines.tabular.definition import processing_entrypoint

__all__ = ["BatchScoringInputs", "build_pipeline_definition", "inputs_for_settings"]

PARAM_INPUT_DATA_URI: Final = "InputDataUri"
PARAM_MODEL_NAME: Final = "ModelName"
PARAM_MODEL_PACKAGE_ARN: Final = "ModelPackageArn"
PARAM_TRANSFORM_INSTANCE_TYPE: Final = "TransformInstanceType"
#: The deployed definition's parameters, in order.
PARAMETER_NAMES: Final[tuple[str, ...]] = (
    PARAM_INPUT_DATA_URI,
    PARAM_MODEL_NAME,
    PARAM_MODEL_PACKAGE_ARN,
    PARAM_TRANSFORM_INSTANCE_TYPE,
)
TEAM_TAG: Final = "flywheel:team"

STEP_PREPARE: Final = "Prepare"
STEP_INPUT_CHECK: Final = "InputCheck"
STEP_INPUT_REJECTED: Final = "ScoringInputRejected"
STEP_SCORE: Final = "Score"
STEP_SUMMARIZE: Final = "Summarize"
STEP_ROW_COUNT_CHECK: Final = "RowCountCheck"
STEP_SCORING_FAILED: Final = "ScoringFailed"
PROPERTY_FILE_STATUS: Final = "ScoringInputStatus"
PROPERTY_FILE_SUMMARY: Final = "ScoringSummary"
STATUS_FILE: Final = "status.json"
SUMMARY_FILE: Final = "summary.json"

#: Step role kinds: ``preprocessing`` (raw batch + PII key → tokenized scoring input), ``scoring`` (the
#: model's execution role: the transform job), ``reporting`` (the row-count summary).
SCORING: Final = "scoring"
REPORTING: Final = "reporting"
STEP_ROLE_KINDS: Final[tuple[str, ...]] = (PREPROCESSING, SCORING, REPORTING)

PROCESSING_CODE_DIR: Final = "/opt/ml/processing/input/code"
CONTRACT_FILE_NAME: Final = "contract.json"
CSV: Final = "text/csv"


@dataclass(frozen=True)
class BatchScoringInputs:
    """Everything the definition depends on (account-specific values: CDK tokens or local names)."""

    pipeline_name: str
    region: str
    role_arn: str  # the pipeline's own role (creates the jobs); never a job's role
    preprocessing_role_arn: str
    reporting_role_arn: str
    team: str
    kms_key_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    raw_bucket: str
    features_bucket: str
    reports_bucket: str
    source_uri: str
    source_sha256: str
    contract_uri: str
    #: Number of serving columns of the contract (the model's request columns): the transform's output
    #: filter keeps column 0 (the token) and everything after the joined input's serving columns.
    serving_column_count: int
    id_column: str
    transform_instance_type: str = "ml.m5.large"
    transform_instance_count: int = 1
    max_payload_mb: int = 6
    processing_instance_type: str = "ml.m5.large"
    volume_size_gb: int = 30
    max_runtime_seconds: int = 3600
    sklearn_framework_version: str = "1.9-0"

    def __post_init__(self) -> None:
        if self.serving_column_count < 1:
            raise ValueError("serving_column_count: the contract has no serving columns to score")
        if not 1 <= self.transform_instance_count <= 10:
            raise ValueError(f"transform_instance_count: {self.transform_instance_count} is outside 1-10")
        if not 1 <= self.max_payload_mb <= 100:
            raise ValueError(f"max_payload_mb: {self.max_payload_mb} is outside 1-100")


def inputs_for_settings(
    team_name: str,
    settings: Any,
    *,
    serving_column_count: int,
    pipeline_name: str,
    region: str,
    role_arn: str,
    role_arns: Mapping[str, str],
    source_sha256: str,
    kms_key_arn: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str],
    buckets: Mapping[str, str],
    source_uri: str,
    contract_uri: str,
) -> BatchScoringInputs:
    """The definition inputs for a team's ``batch-scoring`` settings (``contract``, ``scoring``)."""
    missing = sorted({PREPROCESSING, REPORTING} - set(role_arns))
    if missing:
        raise ValueError(f"role_arns: no role for step kind(s) {missing}")
    scoring = settings.scoring
    return BatchScoringInputs(
        pipeline_name=pipeline_name,
        region=region,
        role_arn=role_arn,
        preprocessing_role_arn=role_arns[PREPROCESSING],
        reporting_role_arn=role_arns[REPORTING],
        team=team_name,
        kms_key_arn=kms_key_arn,
        subnet_ids=tuple(subnet_ids),
        security_group_ids=tuple(security_group_ids),
        raw_bucket=buckets["raw"],
        features_bucket=buckets["features"],
        reports_bucket=buckets["reports"],
        source_uri=source_uri,
        source_sha256=source_sha256,
        contract_uri=contract_uri,
        serving_column_count=serving_column_count,
        id_column=settings.contract.names("id")[0],
        transform_instance_type=scoring.instance_type,
        transform_instance_count=scoring.instance_count,
        max_payload_mb=scoring.max_payload_mb,
        processing_instance_type=scoring.processing_instance_type,
    )


@functools.lru_cache(maxsize=64)
def build_pipeline_definition(inputs: BatchScoringInputs) -> str:
    """The pipeline definition JSON (canonical), built without touching AWS (see :mod:`pipelines.sdk_offline`).

    Memoized per inputs (a frozen, hashable dataclass; the build is deterministic): a process that
    provisions or synthesizes the same team twice builds its definition once."""
    return build_offline(inputs, region=inputs.region, sentinels=_sentinel_values(inputs), build=_build_with_sdk)


def _sentinel_values(inputs: BatchScoringInputs) -> dict[str, Any]:
    return {
        "pipeline_name": sentinel("pipeline-name"),
        "role_arn": role_sentinel(),
        "preprocessing_role_arn": role_sentinel("preprocessing-role"),
        "reporting_role_arn": role_sentinel("reporting-role"),
        "team": sentinel("team"),
        "kms_key_arn": sentinel("kms-key"),
        "subnet_ids": sequence_sentinels("subnet", inputs.subnet_ids),
        "security_group_ids": sequence_sentinels("security-group", inputs.security_group_ids),
        "raw_bucket": sentinel("raw-bucket"),
        "features_bucket": sentinel("features-bucket"),
        "reports_bucket": sentinel("reports-bucket"),
        "source_uri": uri_sentinel("source-uri", inputs.source_uri),
        "contract_uri": uri_sentinel("contract-uri", inputs.contract_uri),
    }


def transform_filters(serving_column_count: int) -> tuple[str, str]:
    """``(InputFilter, OutputFilter)``: the model sees the serving columns; the output keeps the token and
    the model's columns (the joined record is ``token, <n serving columns>, <model output>``)."""
    return "$[1:]", f"$[0,{serving_column_count + 1}:]"


def _build_with_sdk(inputs: BatchScoringInputs) -> str:
    from sagemaker.core.network import NetworkConfig
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.core.transformer import Transformer
    from sagemaker.core.workflow.conditions import ConditionEquals
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterString
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow import ConditionStep, FailStep, Pipeline, ProcessingStep, TransformStep

    sklearn_image = image_uri("sklearn", inputs.sklearn_framework_version, inputs.region, "training")
    session = pipeline_session(inputs.region)

    input_data_uri = ParameterString(name=PARAM_INPUT_DATA_URI)
    model_name = ParameterString(name=PARAM_MODEL_NAME)
    model_package_arn = ParameterString(name=PARAM_MODEL_PACKAGE_ARN)
    transform_instance_type = ParameterString(
        name=PARAM_TRANSFORM_INSTANCE_TYPE, default_value=inputs.transform_instance_type
    )
    parameters = [input_data_uri, model_name, model_package_arn, transform_instance_type]
    allowed_input_prefix = f"{S3_SCHEME}{inputs.raw_bucket}/{scoring_incoming_prefix(inputs.team)}"
    pii_key_uri = f"{S3_SCHEME}{inputs.raw_bucket}/{pii_key_prefix(inputs.team)}{PII_KEY_FILE}"
    tags = [{"Key": TEAM_TAG, "Value": inputs.team}]
    execution_id = ExecutionVariables.PIPELINE_EXECUTION_ID

    def execution_uri(bucket: str, name: str) -> Any:
        return Join(on="/", values=["s3:/", bucket, inputs.pipeline_name, execution_id, name])

    def processing_input(name: str, uri: Any, local_dir: str) -> Any:
        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(
                s3_uri=uri,
                local_path=local_dir,
                s3_data_type="S3Prefix",
                s3_input_mode="File",
                s3_data_distribution_type="FullyReplicated",
                s3_compression_type="None",
            ),
        )

    def processing_output(name: str, uri: Any, local_dir: str) -> Any:
        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(s3_uri=uri, local_path=local_dir, s3_upload_mode="EndOfJob"),
        )

    def processor(script: str, role_arn: str) -> Any:
        return Processor(
            role=role_arn,
            image_uri=sklearn_image,
            entrypoint=[*processing_entrypoint(object_name(inputs.source_uri), inputs.source_sha256), script],
            instance_type=inputs.processing_instance_type,
            instance_count=1,
            volume_size_in_gb=inputs.volume_size_gb,
            volume_kms_key=inputs.kms_key_arn,
            output_kms_key=inputs.kms_key_arn,
            max_runtime_in_seconds=inputs.max_runtime_seconds,
            base_job_name=f"flywheel-{script.removesuffix('.py')}",
            tags=tags,
            network_config=NetworkConfig(
                enable_network_isolation=True,
                security_group_ids=list(inputs.security_group_ids),
                subnets=list(inputs.subnet_ids),
                encrypt_inter_container_traffic=True,
            ),
            sagemaker_session=session,
        )

    code_input = processing_input("code", inputs.source_uri, PROCESSING_CODE_DIR)
    contract_dir = "/opt/ml/processing/input/contract"

    # Prepare ---------------------------------------------------------------------------------
    status = PropertyFile(name=PROPERTY_FILE_STATUS, output_name="manifest", path=STATUS_FILE)
    prepare = ProcessingStep(
        name=STEP_PREPARE,
        description="Tokenize ids, drop identifiers, generalize quasi-identifiers: the model's scoring input.",
        step_args=processor("prepare.py", inputs.preprocessing_role_arn).run(
            inputs=[
                processing_input("raw", input_data_uri, "/opt/ml/processing/input/raw"),
                processing_input("contract", inputs.contract_uri, contract_dir),
                processing_input("pii-key", pii_key_uri, "/opt/ml/processing/input/pii-key"),
                code_input,
            ],
            outputs=[
                processing_output(
                    "scoring-input",
                    execution_uri(inputs.features_bucket, "scoring-input"),
                    "/opt/ml/processing/output/scoring-input",
                ),
                processing_output(
                    "manifest", execution_uri(inputs.reports_bucket, "manifest"), "/opt/ml/processing/output/manifest"
                ),
            ],
            arguments=[
                "--contract",
                f"{contract_dir}/{object_name(inputs.contract_uri)}",
                "--input-dir",
                "/opt/ml/processing/input/raw",
                "--pii-key-file",
                f"/opt/ml/processing/input/pii-key/{PII_KEY_FILE}",
                "--output-dir",
                "/opt/ml/processing/output",
                "--input-uri",
                input_data_uri,
                "--allowed-input-prefix",
                allowed_input_prefix,
            ],
        ),
        property_files=[status],
    )

    def prepare_output(name: str) -> Any:
        return prepare.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    # Score -----------------------------------------------------------------------------------
    input_filter, output_filter = transform_filters(inputs.serving_column_count)
    transformer = Transformer(
        model_name=model_name,
        instance_count=inputs.transform_instance_count,
        instance_type=transform_instance_type,
        strategy="MultiRecord",
        assemble_with="Line",
        output_path=execution_uri(inputs.features_bucket, "predictions"),
        output_kms_key=inputs.kms_key_arn,
        volume_kms_key=inputs.kms_key_arn,
        accept=CSV,
        max_payload=inputs.max_payload_mb,
        tags=tags,
        base_transform_job_name="flywheel-score",
        sagemaker_session=session,
    )
    score = TransformStep(
        name=STEP_SCORE,
        description="Batch transform with the team's approved model; predictions keep only the id token.",
        step_args=transformer.transform(
            data=prepare_output("scoring-input"),
            data_type="S3Prefix",
            content_type=CSV,
            split_type="Line",
            compression_type="None",
            input_filter=input_filter,
            join_source="Input",
            output_filter=output_filter,
        ),
    )

    # Summarize -------------------------------------------------------------------------------
    summary = PropertyFile(name=PROPERTY_FILE_SUMMARY, output_name="summary", path=SUMMARY_FILE)
    summarize = ProcessingStep(
        name=STEP_SUMMARIZE,
        description="Count predictions against prepared rows; write the run's summary (row counts, failures).",
        step_args=processor("summarize.py", inputs.reporting_role_arn).run(
            inputs=[
                processing_input("manifest", prepare_output("manifest"), "/opt/ml/processing/input/manifest"),
                processing_input(
                    "predictions", score.properties.TransformOutput.S3OutputPath, "/opt/ml/processing/input/predictions"
                ),
                code_input,
            ],
            outputs=[
                processing_output(
                    "summary", execution_uri(inputs.reports_bucket, "summary"), "/opt/ml/processing/output/summary"
                )
            ],
            arguments=[
                "--manifest-dir",
                "/opt/ml/processing/input/manifest",
                "--predictions-dir",
                "/opt/ml/processing/input/predictions",
                "--output-dir",
                "/opt/ml/processing/output/summary",
                "--model-package-arn",
                model_package_arn,
                "--input-uri",
                input_data_uri,
            ],
        ),
        property_files=[summary],
    )
    row_count_check = ConditionStep(
        name=STEP_ROW_COUNT_CHECK,
        description="Every prepared row has exactly one prediction.",
        conditions=[
            ConditionEquals(
                left=JsonGet(step_name=STEP_SUMMARIZE, property_file=summary, json_path="passed"), right=True
            )
        ],
        if_steps=[],
        else_steps=[
            FailStep(
                name=STEP_SCORING_FAILED,
                error_message=Join(
                    on="",
                    values=[
                        "Batch scoring failed: ",
                        JsonGet(step_name=STEP_SUMMARIZE, property_file=summary, json_path="summary"),
                    ],
                ),
            )
        ],
    )
    input_check = ConditionStep(
        name=STEP_INPUT_CHECK,
        description="Score only a batch whose columns fit the team's data contract.",
        conditions=[
            ConditionEquals(left=JsonGet(step_name=STEP_PREPARE, property_file=status, json_path="passed"), right=True)
        ],
        if_steps=[score, summarize, row_count_check],
        else_steps=[
            FailStep(
                name=STEP_INPUT_REJECTED,
                error_message=Join(
                    on="",
                    values=[
                        "Scoring input rejected: ",
                        JsonGet(step_name=STEP_PREPARE, property_file=status, json_path="summary"),
                    ],
                ),
            )
        ],
    )
    pipeline = Pipeline(
        name=inputs.pipeline_name,
        parameters=parameters,
        steps=[prepare, input_check],
        pipeline_experiment_config=None,
        sagemaker_session=session,
    )
    return str(pipeline.definition())
