"""A tiny embedded catalog with a fake trained model, and clients of the web app over it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.web.fake_catalog import build_catalog
from web.app import create_app
from web.auth import AuthConfig

SECRET = b"test-secret-of-32-bytes-at-least!"


@pytest.fixture
def catalog(tmp_path):
    return build_catalog(tmp_path / "home")


def make_client(app, auth: AuthConfig, role: str | None) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    if role is not None:
        token = f"token-{role}"
        auth.sign_in_tokens[token] = role
        response = client.get("/signin", params={"token": token})
        assert response.status_code == 303
    return client


@pytest.fixture
def auth():
    return AuthConfig(secret=SECRET)


@pytest.fixture
def app(catalog, auth):
    return create_app(catalog.ports, auth=auth, cache_ttl_s=0)


@pytest.fixture
def staff(app, auth):
    return make_client(app, auth, "staff")


@pytest.fixture
def viewer(app, auth):
    return make_client(app, auth, "viewer")


@pytest.fixture
def anonymous(app, auth):
    return make_client(app, auth, None)


def csrf_of(html: str) -> str:
    import re

    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)
