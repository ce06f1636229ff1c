"""An isolated VPC: no internet path, only the endpoints the workloads call, flow logs, closed default SG."""

from __future__ import annotations

from aws_cdk import CfnResource, DefaultStackSynthesizer, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.components.guardrails import audit_log_group_name
from stacks.nag import acknowledge

# Config service name -> CDK endpoint service. Each interface endpoint costs ~$8/month per AZ.
_SERVICES = {
    "sagemaker.api": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "sagemaker.runtime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "ecr.api": ec2.InterfaceVpcEndpointAwsService.ECR,
    "ecr.dkr": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "events": ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
}
#: The VPC range; a literal (not the VpcCidrBlock attribute) so rules and checks can read it at synth.
VPC_CIDR = "10.20.0.0/16"
# Construct ids of endpoints, pinned (a rename would replace the endpoint).
ENDPOINT_IDS = {name: "Endpoint" + name.title().replace(".", "") for name in _SERVICES}


class IsolatedNetwork(Construct):
    """``vpc`` with isolated subnets only; ``endpoint_security_group`` admits HTTPS from the VPC only.

    Endpoint policies: the S3 gateway endpoint reaches only the lake buckets (``lake_bucket_prefix``:
    CloudFormation names them ``<lake stack name>-<logical id>-<suffix>``, lower case), the CDK asset
    bucket and the region's ECR layer bucket, for this account's principals; interface endpoints serve
    this account's principals only. So a job cannot move data to a bucket or service of another account
    through the VPC, even with credentials of that account.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        lake_bucket_prefix: str,
        region: str,
        max_azs: int,
        interface_endpoints: tuple[str, ...],
        flow_logs: bool,
        logs_key: kms.IKey,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            # Explicit AZ names: no context lookup (and so no AWS call) at synth.
            availability_zones=[f"{region}{suffix}" for suffix in "abc"[:max_azs]],
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22)
            ],
            restrict_default_security_group=True,
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
        )
        # CDK's provider role for the RestrictDefaultSG handler: only Lambda functions of this account.
        provider = Stack.of(self).node.find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
        provider_role = provider.node.find_child("Role")
        assert isinstance(provider_role, CfnResource)
        provider_role.add_property_override(
            "AssumeRolePolicyDocument.Statement.0.Condition",
            {"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
        )
        if flow_logs:
            self.flow_log_group = logs.LogGroup(
                self,
                "FlowLogs",
                # A fixed name under the audit prefix: the boundary denies deleting or shortening it.
                log_group_name=audit_log_group_name(env_name, "vpc-flow-logs"),
                encryption_key=logs_key,
                retention=log_retention,
                removal_policy=removal_policy,
            )
            self.vpc.add_flow_log(
                "FlowLog",
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
                traffic_type=ec2.FlowLogTrafficType.ALL,
            )
            flow_log_role = self.vpc.node.find_child("FlowLog").node.find_child("IAMRole")
            account = Stack.of(self).account
            # Confused-deputy guard: only flow logs of this account may assume the delivery role.
            cfn_role = flow_log_role.node.default_child
            assert isinstance(cfn_role, CfnResource)
            cfn_role.add_property_override(
                "AssumeRolePolicyDocument.Statement.0.Condition",
                {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Stack.of(self).partition}:ec2:{region}:{account}:vpc-flow-log/*"
                    },
                },
            )
            for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
                acknowledge(
                    flow_log_role.node.find_child("DefaultPolicy"),
                    f"{pack}-IAMNoInlinePolicy",
                    "CDK-generated policy of the flow-log delivery role, scoped to its one log group; "
                    "inline keeps it deleted together with the role",
                )
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="HTTPS from inside the VPC to the interface endpoints",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_ingress_rule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), "HTTPS from the VPC")
        # Jobs, models and Lambdas run in this group. Egress is HTTPS only; "anywhere" because the S3
        # gateway endpoint is reached through a prefix list whose id needs a lookup at synth, and the
        # isolated subnets have no route out of the VPC anyway (no IGW, no NAT): 443 reaches endpoints only.
        self.workload_security_group = ec2.SecurityGroup(
            self,
            "WorkloadSecurityGroup",
            vpc=self.vpc,
            description="SageMaker jobs, models and Lambdas: HTTPS egress to VPC endpoints only",
            allow_all_outbound=False,
        )
        self.workload_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to VPC endpoints (no route leaves the VPC)"
        )
        self.endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        for name in interface_endpoints:
            self.endpoints[name] = self.vpc.add_interface_endpoint(
                ENDPOINT_IDS[name],
                service=_SERVICES[name],
                private_dns_enabled=True,
                open=False,  # the group above already admits the VPC range (as a literal nag can read)
                security_groups=[self.endpoint_security_group],
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            )

        self._restrict_endpoints(region, lake_bucket_prefix)

    def _restrict_endpoints(self, region: str, lake_bucket_prefix: str) -> None:
        stack = Stack.of(self)
        account, partition = stack.account, stack.partition
        this_account = {"StringEquals": {"aws:PrincipalAccount": account, "aws:ResourceAccount": account}}
        s3_gateway = self.vpc.node.find_child("S3")
        assert isinstance(s3_gateway, ec2.GatewayVpcEndpoint)
        buckets = [f"{lake_bucket_prefix}*", cdk_assets_bucket(stack)]
        s3_gateway.add_to_policy(
            iam.PolicyStatement(
                sid="FlywheelBucketsOfThisAccount",
                principals=[iam.AnyPrincipal()],
                actions=["s3:*"],
                resources=[
                    arn for b in buckets for arn in (f"arn:{partition}:s3:::{b}", f"arn:{partition}:s3:::{b}/*")
                ],
                conditions=this_account,
            )
        )
        # ECR serves image layers from this AWS-owned bucket through presigned URLs (so no principal
        # condition: the URL's signer is ECR's, not ours); read-only, one bucket.
        s3_gateway.add_to_policy(
            iam.PolicyStatement(
                sid="EcrImageLayers",
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject"],
                resources=[f"arn:{partition}:s3:::{ecr_layer_bucket(region)}/*"],
            )
        )
        for endpoint in self.endpoints.values():
            endpoint.add_to_policy(
                iam.PolicyStatement(
                    sid="ThisAccountsPrincipalsOnly",
                    principals=[iam.AnyPrincipal()],
                    actions=["*"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:PrincipalAccount": account}},
                )
            )

    def admit_source_bucket(self, *, account: str, bucket_pattern: str) -> None:
        """The S3 gateway endpoint also lets this account's principals read objects of another account's
        bucket (``bucket_pattern``): the promotion source's artifacts, read by this environment's models."""
        stack = Stack.of(self)
        s3_gateway = self.vpc.node.find_child("S3")
        assert isinstance(s3_gateway, ec2.GatewayVpcEndpoint)
        s3_gateway.add_to_policy(
            iam.PolicyStatement(
                sid="PromotionSourceArtifactsRead",
                principals=[iam.AnyPrincipal()],
                actions=["s3:GetObject"],
                resources=[f"arn:{stack.partition}:s3:::{bucket_pattern}/*"],
                conditions={"StringEquals": {"aws:PrincipalAccount": stack.account, "aws:ResourceAccount": account}},
            )
        )

    @property
    def isolated_subnet_ids(self) -> list[str]:
        """Subnets for SageMaker jobs, models and Lambdas."""
        return self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids


def ecr_layer_bucket(region: str) -> str:
    """The AWS-owned bucket ECR serves image layers from (AWS PrivateLink for ECR, S3 gateway policy)."""
    return f"prod-{region}-starport-layer-bucket"


def cdk_assets_bucket(stack: Stack) -> str:
    """The CDK bootstrap asset bucket of ``stack``'s account and region (step code, team files)."""
    qualifier = stack.node.try_get_context("@aws-cdk/core:bootstrapQualifier") or (
        DefaultStackSynthesizer.DEFAULT_QUALIFIER
    )
    return (
        DefaultStackSynthesizer.DEFAULT_FILE_ASSETS_BUCKET_NAME.replace("${Qualifier}", qualifier)
        .replace("${AWS::AccountId}", stack.account)
        .replace("${AWS::Region}", stack.region)
    )
