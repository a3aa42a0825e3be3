"""λ web: the quality web app behind API Gateway's HTTP API, through Mangum.

Staff sign in through the Cognito hosted UI (`web.auth`); requests to `/api/...` carry a bearer
token that API Gateway's JWT authorizer verified. The app, its ports and the signing key are
built once per container, on the first request.
"""

from __future__ import annotations

from functools import cache

from mangum import Mangum

from lambdas import wiring
from shared.errors import ConfigurationError
from shared.image_links import secret_key
from shared.ports import Ports
from shared.similarity import similar_query
from web.app import create_app
from web.auth import AuthConfig, CognitoConfig


def build_app(ports: Ports):
    """The app with Cognito sign-in and Secure cookies, as deployed."""
    settings = ports.settings
    missing = [
        name
        for name, value in {
            "DRESSVISION_WEB_BASE_URL": settings.web_base_url,
            "DRESSVISION_WEB_COGNITO_DOMAIN": settings.web_cognito_domain,
            "DRESSVISION_WEB_COGNITO_CLIENT_ID": settings.web_cognito_client_id,
        }.items()
        if not value
    ]
    if missing:
        raise ConfigurationError(f"the web Lambda needs {', '.join(missing)} (set by infra)")
    cognito = CognitoConfig(
        domain=settings.web_cognito_domain,
        client_id=settings.web_cognito_client_id,
        base_url=settings.web_base_url,
    )
    auth = AuthConfig(secret=secret_key(settings), secure_cookies=True, cognito=cognito)
    return create_app(ports, auth=auth, similar=similar_query(ports))


@cache
def _adapter() -> Mangum:
    return Mangum(build_app(wiring.ports()), lifespan="off")


def handler(event: dict, context: object) -> dict:
    return _adapter()(event, context)
