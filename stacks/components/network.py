"""An isolated VPC: no internet path, only the endpoints the workloads call, flow logs, closed default SG."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

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
    """``vpc`` with isolated subnets only; ``endpoint_security_group`` admits HTTPS from the VPC only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
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
        if flow_logs:
            self.flow_log_group = logs.LogGroup(
                self,
                "FlowLogs",
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

    @property
    def isolated_subnet_ids(self) -> list[str]:
        """Subnets for SageMaker jobs, models and Lambdas."""
        return self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids
