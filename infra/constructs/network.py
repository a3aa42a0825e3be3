"""The VPC the GPU jobs run in, built to cost nothing while no job runs.

Public subnets only, no NAT gateway: instances get a public IPv4 address and pull the job image
from ECR and write logs over the internet gateway (in-region ECR pulls carry no data charge).
Images, models, manifests and the tables go through the free S3 and DynamoDB gateway
endpoints instead, so the bulk of the traffic never leaves the AWS network and bills nothing.
Nothing can connect in: the jobs' security group has no inbound rule.

The alternative, private subnets with interface endpoints for ECR (api + dkr), CloudWatch Logs
and STS, costs about USD 7/month per endpoint per AZ (some USD 60/month for two AZs) even when
no job runs; a NAT gateway costs about USD 32/month per AZ plus data. Both idle above zero.
Public IPv4 addresses bill about USD 0.005/hour, and only while an instance runs.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

MAX_AZS = 2  # an environment-agnostic stack can count on two AZs (Fn::GetAZs)


class JobNetwork(Construct):
    """`vpc` with public subnets and gateway endpoints; `security_group` for the instances."""

    def __init__(self, scope: Construct, construct_id: str, *, flow_log_bucket: s3.IBucket):
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=MAX_AZS,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="jobs", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20
                )
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
            # Nothing uses the default group. Closing it would add a custom-resource Lambda.
            restrict_default_security_group=False,
            flow_logs={
                "Rejected": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_s3(flow_log_bucket, "vpc-flow-logs/"),
                    traffic_type=ec2.FlowLogTrafficType.REJECT,  # what was refused: cheap, useful
                )
            },
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "Jobs",
            vpc=self.vpc,
            description="GPU job instances: no inbound, outbound to ECR, S3, DynamoDB, Logs",
            allow_all_outbound=True,
        )
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
