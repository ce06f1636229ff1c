"""boto3-backed :class:`lambdas.lifecycle.LifecycleActions` of the deploy Lambda, per ``deploy_target``.

* ``realtime``: CreateModel (network-isolated, in the VPC, the package's image and artifact) →
  CreateEndpointConfig (KMS volume key, data capture to ``s3://<capture>/datacapture`` with the capture
  key, ≥ ``MIN_INSTANCES`` instances) → CreateEndpoint, or UpdateEndpoint through deployment guardrails
  (blue/green, CANARY traffic routing, bake, termination wait, maximum execution time, auto-rollback on
  the endpoint's CloudWatch alarms). UpdateEndpoint is behind a seam (``update_endpoint``): moto lacks it.
* ``serverless``: a ServerlessConfig variant, updated all at once (guardrails do not apply to serverless
  endpoints, nor VPC config, network isolation or data capture — AWS's feature exclusions).
* ``batch``: no endpoint; the Model is created and recorded as the team's current batch model.

Names are derived from the package version and a digest of the deployment settings, so a redelivered
event finds what the first one created (``already exists`` is success) and never creates twice.
The rollout's expected config is recorded; :mod:`.rollout` later tells success from a silent rollback.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import ClientError

from lambdas.common.errors import error_code
from lambdas.common.store import Records
from lambdas.lifecycle import PACKAGE_ARN, TeamTarget

from .config import DeployConfig

VARIANT: Final = "AllTraffic"
PACKAGE_TAG: Final = "flywheel:model-package-arn"
CAPTURE_PREFIX: Final = "datacapture"
NAME_LIMIT: Final = 63


class DeploymentRefused(RuntimeError):
    """A deployment the Lambda will not make (e.g. the config was rolled back by its alarms before)."""


def rollout_record(endpoint: str) -> str:
    """The record name of an endpoint's latest rollout."""
    return f"rollout#{endpoint}"


def batch_model_record(group: str) -> str:
    """The record name of a group's current batch model."""
    return f"batch-model#{group}"


def package_version(arn: str) -> int:
    """The version of a versioned model-package ARN."""
    match = PACKAGE_ARN.match(arn)
    if match is None:
        raise ValueError("not a versioned model package ARN")
    return int(match["version"])


def resource_name(base: str, version: int, spec: Any) -> str:
    """``<base>-v<version>-<digest of spec>``, at most 63 characters, deterministic."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:8]
    suffix = f"-v{version}-{digest}"
    return f"{base[: NAME_LIMIT - len(suffix)].rstrip('-')}{suffix}"


def model_request(config: DeployConfig, package: dict[str, Any], name: str) -> dict[str, Any]:
    """CreateModel for the package's first container (image + artifact), isolated and in the VPC."""
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    if not containers or not containers[0].get("Image") or not containers[0].get("ModelDataUrl"):
        raise DeploymentRefused("the model package has no container image and artifact to deploy")
    container = {"Image": containers[0]["Image"], "ModelDataUrl": containers[0]["ModelDataUrl"]}
    request: dict[str, Any] = {
        "ModelName": name,
        "PrimaryContainer": container,
        "ExecutionRoleArn": config.execution_role_arn,
        "Tags": [{"Key": PACKAGE_TAG, "Value": package["ModelPackageArn"]}],
    }
    if config.deploy_target != "serverless":
        request["EnableNetworkIsolation"] = True
        request["VpcConfig"] = {"Subnets": list(config.subnet_ids), "SecurityGroupIds": list(config.security_group_ids)}
    return request


def endpoint_config_request(config: DeployConfig, name: str, model_name: str, package_arn: str) -> dict[str, Any]:
    """CreateEndpointConfig: KMS volume key; realtime: capture to the capture zone; serverless: ServerlessConfig."""
    variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model_name}
    request: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [variant],
        "KmsKeyId": config.volume_kms_key_id,
        "Tags": [{"Key": PACKAGE_TAG, "Value": package_arn}],
    }
    if config.deploy_target == "serverless":
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": config.serverless_memory_mb,
            "MaxConcurrency": config.serverless_max_concurrency,
        }
        return request
    variant.update(
        InstanceType=config.instance_type, InitialInstanceCount=config.min_instances, InitialVariantWeight=1.0
    )
    request["DataCaptureConfig"] = {
        "EnableCapture": True,
        "InitialSamplingPercentage": config.capture_sampling_percent,
        "DestinationS3Uri": f"s3://{config.capture_bucket}/{CAPTURE_PREFIX}",
        "KmsKeyId": config.capture_kms_key_id,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    return request


def deployment_config(config: DeployConfig) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig: blue/green canary with auto-rollback on the endpoint's alarms."""
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": config.canary_size_type, "Value": config.canary_size},
                "WaitIntervalInSeconds": config.bake_seconds,
            },
            "TerminationWaitInSeconds": config.termination_wait_seconds,
            "MaximumExecutionTimeoutInSeconds": config.max_execution_seconds,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in config.rollback_alarms]},
    }


def _exists(exc: ClientError) -> bool:
    message = str(exc.response.get("Error", {}).get("Message", "")).lower()
    return error_code(exc) == "ValidationException" and "already exist" in message


def _missing(exc: ClientError) -> bool:
    message = str(exc.response.get("Error", {}).get("Message", "")).lower()
    return error_code(exc) == "ValidationException" and ("could not find" in message or "does not exist" in message)


class SageMakerDeployActions:
    """Deploy, undeploy and report the deployed package through SageMaker (one team, one target)."""

    def __init__(
        self,
        config: DeployConfig,
        sagemaker: Any,
        records: Records,
        *,
        update_endpoint: Callable[..., Any] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.sagemaker = sagemaker
        self.records = records
        #: The UpdateEndpoint seam (moto has none); the real client's method by default.
        self.update_endpoint = update_endpoint or sagemaker.update_endpoint
        #: What each deploy/undeploy did, in order (the handler reports and logs them).
        self.outcomes: list[dict[str, Any]] = []

    # LifecycleActions -------------------------------------------------------------------------------

    def start_pipeline(self, target: TeamTarget, parameters: Any, client_token: str) -> str:
        raise NotImplementedError("the deploy Lambda starts no pipelines")

    def deployed_package(self, target: TeamTarget) -> str | None:
        """The package the endpoint actually serves (its config's tag), or the recorded batch model."""
        if self.config.deploy_target == "batch":
            record = self.records.get(batch_model_record(self.config.group_name))
            return None if record is None else str(record["package_arn"])
        endpoint = self._endpoint()
        if endpoint is None:
            return None
        # The config the endpoint really runs (after a silent rollback: the old one) → its package.
        record = self.records.get(rollout_record(self.config.endpoint_name)) or {}
        package = (record.get("configs") or {}).get(endpoint["EndpointConfigName"])
        return None if package is None else str(package)

    def deploy(self, target: TeamTarget, package_arn: str) -> None:
        """Serve ``package_arn`` per the deploy target (idempotent: names are deterministic)."""
        package = self.sagemaker.describe_model_package(ModelPackageName=package_arn)
        version = package_version(package_arn)
        base = self.config.endpoint_name if self.config.deploy_target != "batch" else self.config.group_name
        probe = model_request(self.config, package, "")
        model_name = resource_name(base, version, probe)
        self._create("create_model", model_request(self.config, package, model_name))
        if self.config.deploy_target == "batch":
            self.records.put(
                batch_model_record(self.config.group_name), {"package_arn": package_arn, "model_name": model_name}
            )
            self.outcomes.append({"action": "batch-model-recorded", "model": model_name, "version": version})
            return
        config_request = endpoint_config_request(self.config, "", model_name, package_arn)
        config_name = resource_name(self.config.endpoint_name, version, config_request)
        config_request["EndpointConfigName"] = config_name
        previous = self.records.get(rollout_record(self.config.endpoint_name))
        if previous and previous.get("config") == config_name and previous.get("outcome") == "rolled-back":
            raise DeploymentRefused(
                f"endpoint config {config_name} was rolled back by its alarms; approve a new version to retry"
            )
        self._create("create_endpoint_config", config_request)
        endpoint = self._endpoint()
        if endpoint is None:
            self.sagemaker.create_endpoint(
                EndpointName=self.config.endpoint_name,
                EndpointConfigName=config_name,
                Tags=[{"Key": PACKAGE_TAG, "Value": package_arn}],
            )
            action, old = "endpoint-created", None
        elif endpoint["EndpointConfigName"] == config_name:
            self.outcomes.append({"action": "already-serving", "config": config_name, "version": version})
            return
        else:
            status = endpoint.get("EndpointStatus")
            if status != "InService":
                # Raised, not swallowed: Lambda retries later (a rollout in progress must finish first).
                raise RuntimeError(f"endpoint is {status}; it can be updated only when InService")
            old = endpoint["EndpointConfigName"]
            request: dict[str, Any] = {"EndpointName": self.config.endpoint_name, "EndpointConfigName": config_name}
            if self.config.deploy_target == "realtime":
                request["DeploymentConfig"] = deployment_config(self.config)
            self.update_endpoint(**request)
            action = "canary-rollout-started" if self.config.deploy_target == "realtime" else "updated-all-at-once"
        self.records.put(
            rollout_record(self.config.endpoint_name),
            {
                "config": config_name,
                "previous": old,
                "package_arn": package_arn,
                "version": version,
                "outcome": "in-progress",
                "configs": {**((previous or {}).get("configs") or {}), config_name: package_arn},
            },
        )
        self.outcomes.append({"action": action, "config": config_name, "previous": old, "version": version})

    def undeploy(self, target: TeamTarget) -> None:
        """No approved package left: delete the endpoint (models and configs stay for the audit trail)."""
        if self.config.deploy_target == "batch":
            self.records.delete(batch_model_record(self.config.group_name))
            self.outcomes.append({"action": "batch-model-cleared"})
            return
        if self._endpoint() is not None:
            self.sagemaker.delete_endpoint(EndpointName=self.config.endpoint_name)
        self.records.delete(rollout_record(self.config.endpoint_name))
        self.outcomes.append({"action": "endpoint-deleted"})

    # Helpers ----------------------------------------------------------------------------------------

    def _endpoint(self) -> dict[str, Any] | None:
        try:
            endpoint: dict[str, Any] = self.sagemaker.describe_endpoint(EndpointName=self.config.endpoint_name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return endpoint

    def _create(self, operation: str, request: dict[str, Any]) -> None:
        try:
            getattr(self.sagemaker, operation)(**request)
        except ClientError as exc:
            if not _exists(exc):  # a redelivery finds what the first delivery created
                raise
