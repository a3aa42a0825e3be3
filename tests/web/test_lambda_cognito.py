"""On AWS: Cognito hosted-UI sign-in (PKCE), roles from `cognito:groups`, Secure cookies, and
`/api/...` requests that API Gateway's JWT authorizer verified, through Mangum as deployed."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from mangum import Mangum

from infra.bundling import project_dependencies
from lambdas.web import build_app
from shared.errors import ConfigurationError
from web.app import create_app
from web.auth import AuthConfig, CognitoConfig, role_from_groups

DOMAIN = "https://dv-test.auth.eu-west-1.amazoncognito.com"


def _jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


@pytest.fixture
def cognito_client(catalog):
    exchanged = []

    def exchange(code, verifier, redirect_uri):
        exchanged.append((code, verifier, redirect_uri))
        groups = {"staff-code": ["staff"], "viewer-code": ["viewer"], "none-code": []}[code]
        return {
            "id_token": _jwt({"sub": "u1", "email": "ann@example.com", "cognito:groups": groups})
        }

    cognito = CognitoConfig(DOMAIN, "client123", "https://web.example.com", exchange=exchange)
    auth = AuthConfig(secret=b"s" * 32, secure_cookies=True, cognito=cognito)
    app = create_app(catalog.ports, auth=auth)
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    return client, exchanged


def _sign_in(client, code):
    start = client.get("/signin")
    assert start.status_code == 303
    url = urllib.parse.urlparse(start.headers["location"])
    query = dict(urllib.parse.parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{DOMAIN}/oauth2/authorize"
    assert query["client_id"] == "client123" and query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == "https://web.example.com/auth/callback"
    return client.get("/auth/callback", params={"code": code, "state": query["state"]}), query


def test_staff_sign_in_through_the_hosted_ui_with_pkce(cognito_client):
    client, exchanged = cognito_client
    response, query = _sign_in(client, "staff-code")
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()
    code, verifier, _ = exchanged[0]
    assert code == "staff-code"
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert digest.rstrip(b"=").decode() == query["code_challenge"]
    page = client.get("/catalog/p00000/img0")
    assert "ann@example.com (staff)" in page.text and "Retag" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    out = client.post("/signout", data={"csrf": csrf})
    assert out.headers["location"].startswith(f"{DOMAIN}/logout?client_id=client123")
    assert client.get("/models").status_code == 303  # the session cookie is gone


def test_viewers_and_people_in_no_group(cognito_client):
    client, _ = cognito_client
    signed_in, _ = _sign_in(client, "viewer-code")
    assert signed_in.status_code == 303
    assert "Retag" not in client.get("/catalog/p00000/img0").text
    client.cookies.clear()
    refused, _ = _sign_in(client, "none-code")
    assert refused.status_code == 403
    assert client.get("/models").status_code == 303


def test_a_callback_without_the_matching_state_is_refused(cognito_client):
    client, exchanged = cognito_client
    client.get("/signin")
    assert (
        client.get("/auth/callback", params={"code": "staff-code", "state": "x"}).status_code == 400
    )
    assert exchanged == []


def test_groups_claim_in_both_shapes():
    assert role_from_groups(["viewer", "staff"]) == "staff"
    assert role_from_groups("[viewer]") == "viewer"
    assert role_from_groups("[admins]") is None
    assert role_from_groups(None) is None


def _http_api_event(path: str, claims: dict | None) -> dict:
    context = {
        "http": {"method": "GET", "path": path, "sourceIp": "1.2.3.4", "protocol": "HTTP/1.1"},
        "requestId": "r1",
        "stage": "$default",
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return {
        "version": "2.0",
        "routeKey": "ANY /api/{proxy+}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc.execute-api.eu-west-1.amazonaws.com"},
        "requestContext": context,
        "isBase64Encoded": False,
    }


def test_api_requests_verified_by_the_jwt_authorizer_get_through_mangum(catalog):
    ports = replace(
        catalog.ports,
        settings=replace(
            catalog.ports.settings,
            web_base_url="https://abc.execute-api.eu-west-1.amazonaws.com",
            web_cognito_domain=DOMAIN,
            web_cognito_client_id="client123",
        ),
    )
    handler = Mangum(build_app(ports), lifespan="off")
    ok = handler(_http_api_event("/api/models", {"cognito:groups": "[viewer]", "sub": "s"}), None)
    assert ok["statusCode"] == 200
    assert json.loads(ok["body"])["kinds"][0]["current"] == catalog.version
    assert handler(_http_api_event("/api/models", None), None)["statusCode"] == 401
    health = handler(_http_api_event("/health", None), None)
    assert health["statusCode"] == 200
    assert "script-src 'self'" in health["headers"]["content-security-policy"]


def test_the_lambda_refuses_to_start_without_its_settings(catalog):
    with pytest.raises(ConfigurationError, match="DRESSVISION_WEB_COGNITO_DOMAIN"):
        build_app(catalog.ports)


def test_the_lambda_layer_carries_the_web_dependencies():
    names = {r.split("==")[0].lower() for r in project_dependencies()}
    assert {"fastapi", "jinja2", "mangum", "python-multipart", "itsdangerous"} <= names
    assert "uvicorn" not in names and "torch" not in names
