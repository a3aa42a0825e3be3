"""One Lambda function of this app, with its own role and log group."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.lambda_package import LambdaPackage
from infra.nag import acknowledge

LOG_RETENTION = logs.RetentionDays.ONE_MONTH


class ProjectFunction(Construct):
    """`handler` (e.g. `lambdas.ingest.handler`) from `package`. Its role starts empty except for
    writing its own log group: the stack grants the rest, resource by resource."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: LambdaPackage,
        handler: str,
        environment: Mapping[str, str],
        timeout: Duration,
        memory_size: int,
        description: str,
        reserved_concurrency: int | None = None,
        function_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        # Our own role instead of the default one, which carries the AWS-managed
        # AWSLambdaBasicExecutionRole (logs on every log group of the account).
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{handler}: only what the stack grants",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            function_name=function_name,
            runtime=package.runtime,
            architecture=package.architecture,
            code=package.code,
            layers=[package.layer],
            handler=handler,
            environment=dict(environment),
            timeout=timeout,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        # CDK writes DependsOn on the role next to the role's GetAtt (cfn-lint W3005): harmless.
        self.function.node.default_child.add_metadata(
            "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"{package.runtime.name} on purpose: the layer's wheels are built for exactly this "
            "Python (infra/constructs/lambda_package.py); move both together.",
        )
