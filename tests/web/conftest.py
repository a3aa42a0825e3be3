"""A tiny embedded catalog with a fake trained model, and clients of the web app over it."""

from __future__ import annotations

import pytest

from tests.web.fake_catalog import SECRET, build_catalog, make_client
from web.app import create_app
from web.auth import AuthConfig


@pytest.fixture
def catalog(tmp_path):
    return build_catalog(tmp_path / "home")


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
