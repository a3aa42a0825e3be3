"""Signed image links: valid for a task's lifetime, no sign-in, only with a valid signature."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from shared.image_links import (
    InvalidLinkError,
    image_link,
    secret_key,
    sign_image_token,
    verify_image_token,
)
from shared.relabel import TASK_LINK_LIFETIME_S, image_url
from shared.workforce.internal import InternalWorkforce

KEY = b"k" * 32


def test_tokens_round_trip_and_refuse_tampering_and_expiry():
    token = sign_image_token(KEY, "p1/img", time.time() + 60)
    assert verify_image_token(KEY, token) == "p1/img"
    with pytest.raises(InvalidLinkError, match="signature"):
        verify_image_token(b"x" * 32, token)
    _payload, mac = token.split(".")
    forged = sign_image_token(KEY, "p2/other", time.time() + 60).split(".")[0]
    with pytest.raises(InvalidLinkError):
        verify_image_token(KEY, f"{forged}.{mac}")
    with pytest.raises(InvalidLinkError, match="expired"):
        verify_image_token(KEY, token, now=time.time() + 61)
    with pytest.raises(InvalidLinkError, match="malformed"):
        verify_image_token(KEY, "garbage")


def test_the_link_route_serves_the_photo_without_sign_in(anonymous, catalog):
    settings = replace(catalog.ports.settings, web_base_url="http://testserver")
    url = image_link(settings, "p00000/img0", time.time() + 3600)
    assert url.startswith("http://testserver/links/images/")
    response = anonymous.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"
    expired = sign_image_token(secret_key(catalog.ports.settings), "p00000/img0", time.time() - 1)
    assert anonymous.get(f"/links/images/{expired}").status_code == 403
    assert anonymous.get("/links/images/abc.def").status_code == 403


def test_crowd_tasks_get_a_link_valid_for_the_task_lifetime(catalog):
    ports = replace(
        catalog.ports,
        settings=replace(catalog.ports.settings, web_base_url="https://quality.example.com"),
    )
    record = ports.labels.get("p00000/img0")
    url = image_url(ports, InternalWorkforce(ports.tasks), record)
    assert url.startswith("https://quality.example.com/links/images/")
    token = url.rsplit("/", 1)[1]
    key = secret_key(ports.settings)
    week_and_a_half = time.time() + 10 * 24 * 3600
    assert verify_image_token(key, token, now=week_and_a_half) == "p00000/img0"
    with pytest.raises(InvalidLinkError):
        verify_image_token(key, token, now=time.time() + TASK_LINK_LIFETIME_S + 1)


def test_without_a_web_base_url_tasks_keep_the_store_url(catalog):
    record = catalog.ports.labels.get("p00000/img0")
    url = image_url(catalog.ports, InternalWorkforce(catalog.ports.tasks), record)
    assert url.startswith("file://")
