"""The quality web app on AWS: an HTTP API in front of `lambdas.web.handler`, staff signing in
through a Cognito user pool's hosted UI.

- `$default` route: every page. No API Gateway authorizer: the app itself requires a session
  (signed cookie, set after the hosted-UI sign-in) on everything but /health, /signin,
  /auth/callback and the signed crowd image links.
- `ANY /api/{proxy+}`: the JSON twins for scripts, behind a JWT authorizer on the user pool
  (`Authorization: Bearer <token>`); the app reads the verified claims' `cognito:groups`.
- Groups `staff` (may retag and answer) and `viewer`; no self sign-up, MFA required.
- A Secrets Manager secret signs sessions and the crowd tasks' image links (`shared.image_links`).

The function's environment names the API's URL and the app client, and the API's integration
names the function: that would be a dependency cycle, so the integration refers to the function
by its fixed name, with explicit dependencies on the function so it exists first.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Aws, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.constructs.function import LOG_RETENTION, ProjectFunction
from infra.constructs.lambda_package import LambdaPackage
from infra.grants import RoleGrants
from infra.nag import acknowledge
from shared import env
from shared.keys import CATALOG_PREFIX, MODELS_PREFIX

HANDLER = "lambdas.web.handler"
TIMEOUT = Duration.seconds(29)  # API Gateway's integration timeout
MEMORY_MB = 1024
STAFF_GROUP = "staff"
VIEWER_GROUP = "viewer"
THROTTLE_RATE = 50  # requests per second for the whole API: a staff tool, not a public site
THROTTLE_BURST = 100


class WebApi(Construct):
    """The web app. `labels` and `tasks` are written (retag, answers); the rest is read."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        package: LambdaPackage,
        name_prefix: str,
        environment: Mapping[str, str],
        catalog: s3.Bucket,
        artifacts: s3.Bucket,
        labels: ddb.Table,
        predictions: ddb.Table,
        tasks: ddb.Table,
    ) -> None:
        super().__init__(scope, construct_id)
        function_name = f"{name_prefix}-web"
        self.secret = secretsmanager.Secret(
            self,
            "SigningSecret",
            description="Signs the web app's sessions and the crowd tasks' image links",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "Rotating this key signs everyone out and breaks the image links of crowd tasks "
            "still open (valid for two weeks); rotate by replacing the secret between rounds.",
        )
        self.user_pool = self._user_pool()
        self.api = apigw.HttpApi(
            self, "Api", description="dressvision quality web app", create_default_stage=True
        )
        # A unique hosted-UI prefix per stack, known without an account lookup.
        stack_suffix = Fn.select(0, Fn.split("-", Fn.select(2, Fn.split("/", Aws.STACK_ID))))
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=f"{name_prefix}-{stack_suffix}"
            ),
        )
        self.sign_in_domain = (
            f"https://{name_prefix}-{stack_suffix}.auth.{Aws.REGION}.amazoncognito.com"
        )
        self.client = self.user_pool.add_client(
            "WebClient",
            generate_secret=False,  # a public client with PKCE: no secret to keep
            prevent_user_existence_errors=True,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[
                    cognito.OAuthScope.OPENID,
                    cognito.OAuthScope.EMAIL,
                    cognito.OAuthScope.PROFILE,
                ],
                callback_urls=[f"{self.api.api_endpoint}/auth/callback"],
                logout_urls=[f"{self.api.api_endpoint}/signin"],
            ),
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(1),
        )
        self.function = ProjectFunction(
            self,
            "Web",
            package=package,
            handler=HANDLER,
            function_name=function_name,
            description="The quality web app (FastAPI through Mangum)",
            environment={
                **environment,
                env.WEB_BASE_URL: self.api.api_endpoint,
                env.WEB_SECRET_ARN: self.secret.secret_arn,
                env.WEB_COGNITO_DOMAIN: self.sign_in_domain,
                env.WEB_COGNITO_CLIENT_ID: self.client.user_pool_client_id,
            },
            timeout=TIMEOUT,
            memory_size=MEMORY_MB,
        )
        self._routes(function_name)
        self._access_logs()
        self._grant(catalog, artifacts, labels, predictions, tasks)

    def _user_pool(self) -> cognito.UserPool:
        pool = cognito.UserPool(
            self,
            "Staff",
            self_sign_up_enabled=False,  # an administrator invites staff and viewers
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for rule in ("AwsSolutions-COG3", "AwsSolutions-COG8"):
            acknowledge(
                pool,
                rule,
                "Threat protection needs the Cognito Plus plan; this pool has no self sign-up, "
                "requires MFA and holds a handful of invited staff accounts.",
            )
        for group, what in ((STAFF_GROUP, "may retag and answer"), (VIEWER_GROUP, "read only")):
            cognito.CfnUserPoolGroup(
                self,
                f"{group.title()}Group",
                user_pool_id=pool.user_pool_id,
                group_name=group,
                description=f"dressvision web app: {what}",
            )
        return pool

    def _routes(self, function_name: str) -> None:
        target = lambda_.Function.from_function_attributes(
            self,
            "Target",
            function_arn=Stack.of(self).format_arn(
                service="lambda",
                resource="function",
                resource_name=function_name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
            same_environment=True,
        )
        integration = integrations.HttpLambdaIntegration("Pages", target)
        self.api.add_routes(
            path="/{proxy+}", methods=[apigw.HttpMethod.ANY], integration=integration
        )
        self.api.add_routes(path="/", methods=[apigw.HttpMethod.ANY], integration=integration)
        self.api.add_routes(
            path="/api/{proxy+}",
            methods=[apigw.HttpMethod.ANY],
            integration=integration,
            authorizer=authorizers.HttpUserPoolAuthorizer(
                "Jwt", self.user_pool, user_pool_clients=[self.client]
            ),
        )
        for construct in self.node.find_all():
            if isinstance(construct, lambda_.CfnPermission | apigw.CfnIntegration):
                construct.node.add_dependency(self.function.function)
        for construct in self.api.node.find_all():
            if isinstance(construct, apigw.CfnRoute) and "/api/" not in construct.route_key:
                acknowledge(
                    construct,
                    "AwsSolutions-APIG4",
                    "The pages authenticate in the app: a signed session cookie set after the "
                    "Cognito hosted-UI sign-in, on every route but health, sign-in and the "
                    "HMAC-signed image links of crowd tasks.",
                )

    def _access_logs(self) -> None:
        log_group = logs.LogGroup(
            self, "AccessLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        stage: apigw.CfnStage = self.api.default_stage.node.default_child  # type: ignore[union-attr]
        stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=log_group.log_group_arn,
            format=(
                '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
                '"time":"$context.requestTime","method":"$context.httpMethod",'
                '"route":"$context.routeKey","status":"$context.status",'
                '"latencyMs":"$context.responseLatency","user":"$context.authorizer.claims.sub"}'
            ),
        )
        stage.default_route_settings = apigw.CfnStage.RouteSettingsProperty(
            throttling_burst_limit=THROTTLE_BURST, throttling_rate_limit=THROTTLE_RATE
        )

    def _grant(self, catalog, artifacts, labels, predictions, tasks) -> None:
        grants = RoleGrants(self.function.role)
        grants.objects(catalog, CATALOG_PREFIX, read=True)  # photos, presigned for browsers
        grants.objects(artifacts, MODELS_PREFIX, read=True)  # versions, metrics, current.json
        grants.table(labels, write=True)  # retag and answers: a label and its event
        grants.table(predictions)
        grants.table(tasks, write=True)  # answering a task
        self.secret.grant_read(self.function.role)
