"""The team's SageMaker model package group: where pipelines register and approvers decide."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct


class ModelRegistry(Construct):
    """``model_package_group`` (name ``group_name``) for one team in one environment."""

    def __init__(self, scope: Construct, construct_id: str, *, group_name: str, description: str) -> None:
        super().__init__(scope, construct_id)
        self.group_name = group_name
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=group_name,
            model_package_group_description=description[:1024],
        )
        # The registry is the approval record of every model: never deleted with the stack.
        self.model_package_group.apply_removal_policy(RemovalPolicy.RETAIN)
