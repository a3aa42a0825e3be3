"""Authentication on every route but sign-in, health and signed links; roles; CSRF; escaping;
CSP; image id validation; cookie flags."""

from __future__ import annotations

import re

import pytest

from tests.web.fake_catalog import csrf_of, make_client
from web.app import create_app
from web.auth import AuthConfig

PAGES = [
    "/",
    "/models",
    "/f1",
    "/catalog",
    "/review",
    "/images/p00000/img0",
    "/catalog/p00000/img0",
]


def test_health_needs_no_sign_in(anonymous):
    assert anonymous.get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_strangers_to_sign_in(anonymous, path):
    response = anonymous.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin"


def test_json_twins_answer_401_without_a_session(anonymous, catalog):
    assert anonymous.get("/api/models").status_code == 401
    assert anonymous.get(f"/api/f1/{catalog.version}/silhouette").status_code == 401


def test_a_forged_session_cookie_is_refused(app, auth):
    other = AuthConfig(secret=b"another-secret-another-secret-xx")
    client = make_client(app, auth, None)
    client.cookies.set("dv_session", other.new_session("mallory", "staff"))
    assert client.get("/models").status_code == 303


def test_sign_in_token_works_once_and_sets_a_safe_cookie(app, auth, anonymous):
    auth.sign_in_tokens["once"] = "staff"
    first = anonymous.get("/signin", params={"token": "once"})
    assert first.status_code == 303
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # local serving is plain HTTP
    assert anonymous.get("/models").status_code == 200
    again = make_client(app, auth, None).get("/signin", params={"token": "once"})
    assert again.status_code == 401
    assert "already used" in again.text


def test_cookies_are_secure_when_configured(catalog):
    auth = AuthConfig(secret=b"s" * 32, secure_cookies=True, sign_in_tokens={"t": "viewer"})
    client = make_client(create_app(catalog.ports, auth=auth), auth, None)
    response = client.get("/signin", params={"token": "t"})
    assert "secure" in response.headers["set-cookie"].lower()


def test_every_page_has_a_csp_without_inline_script(staff, catalog):
    for path in [
        "/models",
        f"/f1/{catalog.version}/silhouette",
        f"/confusion/{catalog.version}/silhouette/test",
        "/catalog",
        "/catalog/p00000/img0",
        "/review",
    ]:
        response = staff.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
        assert inline == [], path
        assert " style=" not in response.text  # no inline styles either (style-src 'self')


def test_viewers_may_look_but_not_retag_or_answer(viewer, catalog):
    page = viewer.get("/catalog/p00000/img0")
    assert page.status_code == 200
    assert "Retag" not in page.text
    csrf = csrf_of(page.text)  # the sign-out form's token: valid, but the role is not
    response = viewer.post(
        "/retag/p00000/img0",
        data={"facet": "silhouette", "label": "shift", "version": 1, "csrf": csrf},
    )
    assert response.status_code == 403
    answer = viewer.post(
        "/review/answer", data={"task_id": catalog.task_id, "label": "shift", "csrf": csrf}
    )
    assert answer.status_code == 403
    assert catalog.ports.labels.events("p00000/img0")[-1].source == "catalog"


@pytest.mark.parametrize("csrf", ["", "not-the-token"])
def test_forms_without_the_sessions_csrf_token_are_refused(staff, catalog, csrf):
    before = catalog.ports.labels.get("p00000/img0")
    response = staff.post(
        "/retag/p00000/img0",
        data={"facet": "silhouette", "label": "shift", "version": before.version, "csrf": csrf},
    )
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert catalog.ports.labels.get("p00000/img0") == before


def test_markup_in_data_renders_as_text(staff, catalog):
    ports = catalog.ports
    record = ports.labels.get(catalog.image_ids[-1])  # the invalid one
    evil = "<script>alert('x')</script>"
    ports.labels.register(record.model_copy(update={"reason": evil, "etag": "other"}))
    for path in ["/catalog?status=invalid", f"/catalog/{record.image_id}"]:
        html = staff.get(path).text
        assert evil not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


@pytest.mark.parametrize(
    "path",
    [
        "/images/p00000/..%2F..%2Fsecret",
        "/images/..%2Fstate.db",
        "/catalog/p00000%2F..%2F..%2Fimg0",
        "/images/p00000/img0%00",
    ],
)
def test_image_ids_are_validated(staff, path):
    response = staff.get(path)
    assert response.status_code == 400
    assert "not a valid image id" in response.text


def test_images_stream_locally_with_a_content_type(staff):
    response = staff.get("/images/p00000/img0")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8"
    assert staff.get("/images/p99999/nothing").status_code == 404


def test_images_redirect_to_a_short_lived_presigned_url_where_the_store_has_one(
    staff, catalog, monkeypatch
):
    def presigned(key, expires_s=3600):
        return f"https://catalog.s3.amazonaws.com/{key}?X-Amz-Expires={expires_s}"

    monkeypatch.setattr(catalog.ports.catalog, "url", presigned)
    response = staff.get("/images/p00000/img0")
    assert response.status_code == 302
    assert response.headers["location"] == (
        "https://catalog.s3.amazonaws.com/catalog/p00000/img0.jpg?X-Amz-Expires=300"
    )
