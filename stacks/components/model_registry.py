"""The team's SageMaker model package group: where pipelines register and approvers decide."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct


class ModelRegistry(Construct):
    """``model_package_group`` (name ``group_name``) for one team in one environment.

    ``readers``: ``(account, role ARN pattern)`` of other accounts' roles that may describe and list the
    group's packages (the promotion path's deploy roles); the group's resource policy admits exactly those
    accounts, and of them only principals whose ARN matches a pattern. No readers: no resource policy.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        group_name: str,
        description: str,
        readers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.group_name = group_name
        self.policy = self._policy(group_name, readers) if readers else None
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=group_name,
            model_package_group_description=description[:1024],
            model_package_group_policy=self.policy,
        )
        # The registry is the approval record of every model: never deleted with the stack.
        self.model_package_group.apply_removal_policy(RemovalPolicy.RETAIN)

    def _policy(self, group_name: str, readers: Sequence[tuple[str, str]]) -> dict[str, object]:
        stack = Stack.of(self)
        sm = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}"
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PromotionDeployRolesReadPackages",
                    "Effect": "Allow",
                    "Principal": {"AWS": sorted({f"arn:{stack.partition}:iam::{a}:root" for a, _ in readers})},
                    "Action": ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"],
                    "Resource": [f"{sm}:model-package-group/{group_name}", f"{sm}:model-package/{group_name}/*"],
                    "Condition": {"ArnLike": {"aws:PrincipalArn": sorted({p for _, p in readers})}},
                }
            ],
        }
