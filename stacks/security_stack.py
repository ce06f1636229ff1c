"""Security foundation (stateful): purpose keys, permissions boundary, SageMaker guardrails, isolated VPC."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from constructs import Construct

from config.models import EnvironmentConfig
from stacks.components.guardrails import Guardrails
from stacks.components.keys import allow_service_logs, purpose_key
from stacks.components.network import IsolatedNetwork
from stacks.settings import log_retention, removal_policy


class SecurityFoundationStack(Stack):
    """Exposes ``logs_key``, ``guardrails`` and ``network`` (job keys are per team: see team_stack)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentConfig,
        lake_stack_name: str,
        serverless_endpoints: Sequence[str] = (),
    ) -> None:
        """``lake_stack_name``: the data-lake stack's name, whose buckets the S3 endpoint may reach;
        ``serverless_endpoints``: the serverless teams' endpoints (the boundary's serverless exception)."""
        super().__init__(scope, construct_id)
        policy = removal_policy(environment)
        self.logs_key = purpose_key(self, "LogsKey", purpose="CloudWatch Logs", removal_policy=policy)
        allow_service_logs(self.logs_key)
        self.network = IsolatedNetwork(
            self,
            "Network",
            env_name=environment.name,
            # CloudFormation's generated bucket names start with the lower-cased stack name.
            lake_bucket_prefix=f"{lake_stack_name.lower()}-",
            region=environment.region,
            max_azs=environment.max_azs,
            interface_endpoints=environment.interface_endpoints,
            flow_logs=environment.flow_logs,
            logs_key=self.logs_key,
            log_retention=log_retention(environment),
            removal_policy=policy,
        )
        self.guardrails = Guardrails(
            self,
            "Guardrails",
            env_name=environment.name,
            vpc=self.network.vpc,
            serverless_endpoints=serverless_endpoints,
        )
