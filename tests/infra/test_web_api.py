"""The web app as deployed: an HTTP API in front of its Lambda, Cognito sign-in for staff, the
JSON routes behind a JWT authorizer, and least-privilege grants."""

from __future__ import annotations

import json

from infra.constructs.web_api import HANDLER
from shared import env
from shared.env import Settings

REVIEW = "lambdas.review.handler"
ITEM_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}


def _routes(synth) -> dict[str, dict]:
    return {r["RouteKey"]: r for r in synth.props("AWS::ApiGatewayV2::Route")}


def test_the_function_environment_is_complete_settings(cfn, synth):
    variables = cfn.function_props(synth, HANDLER)["Environment"]["Variables"]
    concrete = {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in variables.items()}
    settings = Settings.from_env(concrete)  # raises on a setting AWS requires
    assert settings.backend == "aws" and settings.web_cognito_client_id


def test_json_routes_need_a_cognito_jwt_and_pages_authenticate_in_the_app(cfn, synth):
    routes = _routes(synth)
    assert set(routes) == {"ANY /", "ANY /{proxy+}", "ANY /api/{proxy+}"}
    api = routes["ANY /api/{proxy+}"]
    assert api["AuthorizationType"] == "JWT"
    (authorizer,) = synth.props("AWS::ApiGatewayV2::Authorizer")
    assert authorizer["AuthorizerType"] == "JWT"
    (client_id,) = synth.of_type("AWS::Cognito::UserPoolClient")
    assert [cfn.getatt_target(a) for a in authorizer["JwtConfiguration"]["Audience"]] == [client_id]
    assert "cognito-idp" in json.dumps(authorizer["JwtConfiguration"]["Issuer"])
    for key in ("ANY /", "ANY /{proxy+}"):
        assert routes[key]["AuthorizationType"] == "NONE"


def test_the_function_knows_its_url_client_and_secret_and_exists_before_its_integration(cfn, synth):
    props = cfn.function_props(synth, HANDLER)
    variables = props["Environment"]["Variables"]
    assert variables[env.BACKEND] == "aws"
    for name in (env.LABELS_TABLE, env.TASKS_TABLE, env.CATALOG_BUCKET, env.ARTIFACTS_BUCKET):
        assert name in variables
    (api_id,) = synth.of_type("AWS::ApiGatewayV2::Api")
    assert variables[env.WEB_BASE_URL] == {"Fn::GetAtt": [api_id, "ApiEndpoint"]}
    assert "amazoncognito.com" in json.dumps(variables[env.WEB_COGNITO_DOMAIN])
    (client_id,) = synth.of_type("AWS::Cognito::UserPoolClient")
    assert cfn.getatt_target(variables[env.WEB_COGNITO_CLIENT_ID]) == client_id
    (secret_id,) = synth.of_type("AWS::SecretsManager::Secret")
    assert cfn.getatt_target(variables[env.WEB_SECRET_ARN]) == secret_id
    function_id = next(
        k for k, f in synth.of_type("AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == HANDLER
    )  # fmt: skip
    for integration in synth.of_type("AWS::ApiGatewayV2::Integration").values():
        assert function_id in cfn.as_list(integration.get("DependsOn", []))


def test_the_web_role_writes_only_labels_and_tasks_and_reads_photos_and_models(cfn, synth):
    tables = synth.of_type("AWS::DynamoDB::Table")
    statements = cfn.statements_of_roles(synth, {cfn.role_of(synth, HANDLER)})
    written = set()
    for statement in statements:
        resources = json.dumps(statement["Resource"])
        assert not [a for a in cfn.write_actions(statement) if a.startswith("s3:")]
        if set(cfn.actions_of(statement)) & ITEM_WRITES:
            written |= {t for t in tables if t in resources}
        for action in cfn.actions_of(statement):
            if action.startswith("s3:"):
                assert "catalog/*" in resources or "models/*" in resources
    labels = next(t for t in tables if t.startswith("TablesLabels"))
    tasks = next(t for t in tables if t.startswith("TablesTasks"))
    assert written == {labels, tasks}
    assert any("secretsmanager:GetSecretValue" in cfn.actions_of(s) for s in statements)


def test_staff_accounts_are_invited_with_mfa_and_two_groups(synth):
    (pool,) = synth.props("AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert pool["MfaConfiguration"] == "ON"
    groups = {g["GroupName"] for g in synth.props("AWS::Cognito::UserPoolGroup")}
    assert groups == {"staff", "viewer"}
    (client,) = synth.props("AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"]
    assert "/auth/callback" in json.dumps(client["CallbackURLs"])


def test_the_stage_logs_access_and_throttles(synth):
    (stage,) = synth.props("AWS::ApiGatewayV2::Stage")
    assert "DestinationArn" in stage["AccessLogSettings"]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


def test_crowd_tasks_get_links_to_the_web_app(cfn, synth):
    variables = cfn.function_props(synth, REVIEW)["Environment"]["Variables"]
    (api_id,) = synth.of_type("AWS::ApiGatewayV2::Api")
    assert variables[env.WEB_BASE_URL] == {"Fn::GetAtt": [api_id, "ApiEndpoint"]}
    statements = cfn.statements_of_roles(synth, {cfn.role_of(synth, REVIEW)})
    assert any("secretsmanager:GetSecretValue" in cfn.actions_of(s) for s in statements)
