"""The FastAPI app: routes, sign-in, CSRF, security headers. Data comes from `web.data`.

URLs are stable and shareable (a model version, facet, split and class are path segments; the
page and filters are query parameters). Every data page has a JSON twin under `/api/`.
"""

from __future__ import annotations

import hmac
import mimetypes
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import ConflictError, NotFoundError, UnknownLabelError
from shared.ids import sanitize_id
from shared.image_links import InvalidLinkError, verify_image_token
from shared.ports import ObjectStore, Ports
from shared.records import ImageStatus, LabelSource
from shared.registry import ModelKind
from web.auth import (
    OAUTH_COOKIE,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    AuthConfig,
    User,
    api_gateway_user,
    jwt_claims_unverified,
    pkce_pair,
    role_from_groups,
)
from web.data import ERROR_KINDS, SPLITS, SimilarQuery, WebData

HERE = Path(__file__).parent
IMAGE_URL_TTL_S = 300  # a presigned photo URL lives five minutes: enough to load the page


class NotSignedIn(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def checked_image_id(raw: str) -> str:
    """An image id from a URL, refused unless it is already a clean id (no '..', no odd
    characters): nothing from a URL reaches a key or a path unvalidated."""
    try:
        clean = sanitize_id(raw)
    except ValueError:
        clean = None
    if clean != raw:
        raise BadRequest(f"not a valid image id: {raw!r}")
    return raw


def _security_headers(response: Response, cognito_domain: str | None) -> None:
    form_action = "'self'" + (f" {cognito_domain}" if cognito_domain else "")
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"


def create_app(
    ports: Ports,
    *,
    auth: AuthConfig,
    cache_ttl_s: float | None = None,
    similar: SimilarQuery | None = None,
) -> FastAPI:
    """The web app over `ports`, authenticating with `auth`. `cache_ttl_s`: how long scans are
    cached (default: `web.data`'s TTLs; 0 in tests). `similar`: the similarity query (see
    `SimilarQuery`); the image page shows similar dresses only when it is given."""
    ttl = (
        {} if cache_ttl_s is None else {"cache_ttl_s": cache_ttl_s, "slow_cache_ttl_s": cache_ttl_s}
    )
    data = WebData(ports, **ttl)
    taxonomy = ports.taxonomy
    app = FastAPI(title="dressvision", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is escaped: a label "<script>" renders as text
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    templates.globals.update(q=lambda s: quote(str(s), safe="/"), facets=taxonomy.facet_names)
    templates.globals["labels_of"] = taxonomy.labels
    templates.globals["splits"] = SPLITS
    templates.globals["error_kinds"] = ERROR_KINDS
    templates.filters["prob"] = lambda x: "-" if x is None else f"{x:.3f}"
    cognito_domain = auth.cognito.domain if auth.cognito else None

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        _security_headers(response, cognito_domain)
        return response

    # -- helpers ----------------------------------------------------------------------------
    def user_of(request: Request) -> User:
        user = auth.read_session(request.cookies.get(SESSION_COOKIE))
        if user is None and auth.cognito is not None:
            user = api_gateway_user(request.scope)
        if user is None:
            raise NotSignedIn()
        return user

    def staff_of(request: Request, csrf: str) -> User:
        user = user_of(request)
        if not user.is_staff:
            raise Forbidden("only staff may change labels or answer tasks")
        if not user.csrf or not hmac.compare_digest(user.csrf.encode(), csrf.encode()):
            raise Forbidden("the form's CSRF token does not match your session; reload the page")
        return user

    def render(
        request: Request, name: str, context: Mapping[str, Any], status: int = 200
    ) -> HTMLResponse:
        user = auth.read_session(request.cookies.get(SESSION_COOKIE))
        html = templates.get_template(name).render(
            {"user": user, "path": request.url.path, **context}
        )
        return HTMLResponse(html, status_code=status)

    def query(**params: Any) -> str:
        kept = {k: v for k, v in params.items() if v not in (None, "")}
        return "?" + urlencode(kept) if kept else ""

    templates.globals["query"] = query

    def facet_version(version: str) -> str:
        if version not in data.versions(ModelKind.FACETS):
            raise NotFoundError(f"no facet model version {version!r}")
        return version

    def split_of(split: str) -> str:
        if split not in SPLITS:
            raise NotFoundError(f"unknown split {split!r}; use train or test")
        return split

    # -- errors -----------------------------------------------------------------------------
    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "sign in first"}, status_code=401)
        return RedirectResponse("/signin", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.message}, status_code=403)
        return render(request, "error.html", {"title": "Not allowed", "message": exc.message}, 403)

    @app.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.message}, status_code=400)
        return render(request, "error.html", {"title": "Bad request", "message": exc.message}, 400)

    @app.exception_handler(NotFoundError)
    @app.exception_handler(UnknownLabelError)
    async def _not_found(request: Request, exc: Exception):
        """An unknown facet, class or image in a URL is not found; in a form, a bad request."""
        message = str(exc.args[0]) if exc.args else str(exc)
        status, title = (400, "Bad request") if request.method == "POST" else (404, "Not found")
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return render(request, "error.html", {"title": title, "message": message}, status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith("/api/") or exc.status_code != 404:
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return render(request, "error.html", {"title": "Not found", "message": exc.detail}, 404)

    # -- open routes ------------------------------------------------------------------------
    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    def signed_in(role: str, name: str) -> RedirectResponse:
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            auth.new_session(name, role),  # type: ignore[arg-type]
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="lax",
            secure=auth.secure_cookies,
            path="/",
        )
        return response

    @app.get("/signin")
    def signin(request: Request, token: str = ""):
        if auth.cognito is not None:
            state = secrets.token_urlsafe(24)
            verifier, challenge = pkce_pair()
            response = RedirectResponse(auth.cognito.authorize_url(state, challenge), 303)
            response.set_cookie(
                OAUTH_COOKIE,
                auth.oauth_cookie(state, verifier),
                max_age=600,
                httponly=True,
                samesite="lax",
                secure=auth.secure_cookies,
                path="/auth/",
            )
            return response
        if token:
            role = auth.spend_token(token)
            if role is not None:
                return signed_in(role, "local-" + role)
            return render(request, "signin.html", {"failed": True}, 401)
        return render(request, "signin.html", {"failed": False})

    @app.get("/auth/callback")
    def callback(request: Request, code: str = "", state: str = ""):
        if auth.cognito is None:
            raise NotFoundError("no single sign-on here; use the link `dressvision serve` printed")
        expected = auth.read_oauth_cookie(request.cookies.get(OAUTH_COOKIE))
        if not code or expected is None or not hmac.compare_digest(expected[0], state):
            raise BadRequest("the sign-in took too long or did not start here; sign in again")
        tokens = auth.cognito.exchange_code(code, expected[1])
        claims = jwt_claims_unverified(tokens["id_token"])
        role = role_from_groups(claims.get("cognito:groups"))
        if role is None:
            raise Forbidden("your account is in neither the staff nor the viewer group")
        name = str(claims.get("email") or claims.get("cognito:username") or claims["sub"])
        response = signed_in(role, name)
        response.delete_cookie(OAUTH_COOKIE, path="/auth/")
        return response

    @app.post("/signout")
    def signout(request: Request, csrf: str = Form("")):
        user = user_of(request)
        if not hmac.compare_digest(user.csrf.encode(), csrf.encode()):
            raise Forbidden("the form's CSRF token does not match your session; reload the page")
        target = "/signin"
        if auth.cognito is not None:  # end the hosted UI's session too
            target = auth.cognito.logout_url()
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def serve_object(store: ObjectStore, key: str) -> Response:
        """A redirect to a short-lived presigned URL where the store has web URLs (S3); the
        bytes otherwise (a local folder)."""
        url = store.url(key, expires_s=IMAGE_URL_TTL_S)
        if url.startswith(("https://", "http://")):
            response: Response = RedirectResponse(url, status_code=302)
        else:
            stored = store.get(key)
            media = stored.info.content_type or mimetypes.guess_type(key)[0]
            response = Response(stored.body, media_type=media or "application/octet-stream")
        response.headers["Cache-Control"] = f"private, max-age={IMAGE_URL_TTL_S}"
        return response

    @app.get("/links/images/{token}")
    def image_link(token: str):
        """A crowd worker's photo link: no sign-in, the HMAC signature is the permission."""
        from shared.image_links import secret_key

        try:
            image_id = verify_image_token(secret_key(ports.settings), token)
        except InvalidLinkError as exc:
            return JSONResponse({"error": str(exc)}, status_code=403)
        record = ports.labels.get(image_id)
        if record is None:
            raise NotFoundError(f"no image {image_id!r}")
        return serve_object(ports.catalog, record.object_key)

    # -- signed-in routes -------------------------------------------------------------------
    @app.get("/")
    def home(request: Request):
        user_of(request)
        return RedirectResponse("/models", status_code=303)

    @app.get("/images/{image_id:path}")
    def image(request: Request, image_id: str):
        user_of(request)
        record = ports.labels.get(checked_image_id(image_id))
        if record is None:
            raise NotFoundError(f"no image {image_id!r}")
        return serve_object(ports.catalog, record.object_key)

    @app.get("/api/models")
    def models_json(request: Request):
        user_of(request)
        return {"kinds": data.models()}

    @app.get("/models")
    def models(request: Request):
        user_of(request)
        return render(request, "models.html", {"kinds": data.models()})

    @app.get("/f1")
    def f1_current(request: Request):
        user_of(request)
        version = data.current()
        if version is None:
            raise NotFoundError("no facet model is current yet; run `dressvision train`")
        return RedirectResponse(f"/f1/{quote(version)}/{quote(taxonomy.facet_names[0])}", 303)

    @app.get("/api/f1/{version}/{facet}")
    def f1_json(request: Request, version: str, facet: str):
        user_of(request)
        return data.f1(facet_version(version), facet)

    @app.get("/f1/{version}/{facet}")
    def f1(request: Request, version: str, facet: str):
        user_of(request)
        report = data.f1(facet_version(version), facet)
        return render(request, "f1.html", {"r": report, "versions": data.versions("facets")})

    @app.get("/api/confusion/{version}/{facet}/{split}")
    def confusion_json(request: Request, version: str, facet: str, split: str):
        user_of(request)
        return data.confusion(facet_version(version), facet, split_of(split))

    @app.get("/confusion/{version}/{facet}/{split}")
    def confusion(request: Request, version: str, facet: str, split: str):
        user_of(request)
        matrix = data.confusion(facet_version(version), facet, split_of(split))
        return render(request, "confusion.html", {"m": matrix})

    def _cell(version: str, facet: str, split: str, true: str, predicted: str, page_no: int):
        taxonomy.index(facet, true)
        return data.cell(facet_version(version), facet, split_of(split), true, predicted, page_no)

    @app.get("/api/confusion/{version}/{facet}/{split}/{true}/{predicted}")
    def cell_json(
        request: Request, version: str, facet: str, split: str, true: str, predicted: str,
        page: int = 1,
    ):  # fmt: skip
        user_of(request)
        result = _cell(version, facet, split, true, predicted, page)
        return {**result.to_json(), "images": [s.to_json(facet) for s in result.items]}

    @app.get("/confusion/{version}/{facet}/{split}/{true}/{predicted}")
    def cell(
        request: Request, version: str, facet: str, split: str, true: str, predicted: str,
        page: int = 1,
    ):  # fmt: skip
        user_of(request)
        result = _cell(version, facet, split, true, predicted, page)
        title = f"{facet}: labelled {true}, predicted {predicted} ({split})"
        return render(
            request,
            "grid.html",
            {
                "title": title,
                "result": result,
                "facet": facet,
                "about": predicted,
                "back": f"/confusion/{quote(version)}/{quote(facet)}/{split}",
            },
        )

    def _errors(version, facet, label, kind, split, page_no):
        taxonomy.index(facet, label)
        return data.errors(facet_version(version), facet, label, kind, split_of(split), page_no)

    @app.get("/api/errors/{version}/{facet}/{label}/{kind}")
    def errors_json(
        request: Request, version: str, facet: str, label: str, kind: str,
        split: str = "test", page: int = 1,
    ):  # fmt: skip
        user_of(request)
        result = _errors(version, facet, label, kind, split, page)
        return {**result.to_json(), "images": [s.to_json(facet) for s in result.items]}

    @app.get("/errors/{version}/{facet}/{label}/{kind}")
    def errors(
        request: Request, version: str, facet: str, label: str, kind: str,
        split: str = "test", page: int = 1,
    ):  # fmt: skip
        user_of(request)
        result = _errors(version, facet, label, kind, split, page)
        title = f"{facet} {label}: {ERROR_KINDS[kind]} ({split})"
        return page_view(request, result, facet, label, title, version, split)

    def page_view(request, result, facet, about, title, version, split):
        return render(
            request,
            "grid.html",
            {
                "title": title,
                "result": result,
                "facet": facet,
                "about": about,
                "back": f"/f1/{quote(version)}/{quote(facet)}",
                "split": split,
            },
        )

    def _catalog(request: Request):
        params = request.query_params
        filters = {
            name: params.get(name, "") for name in ("split", "facet", "label", "source", "status")
        }
        if filters["split"]:
            split_of(filters["split"])
        if filters["source"] and filters["source"] not in list(LabelSource):
            raise NotFoundError(f"unknown source {filters['source']!r}")
        if filters["status"] and filters["status"] not in list(ImageStatus):
            raise NotFoundError(f"unknown status {filters['status']!r}")
        try:
            page_no = int(params.get("page", "1"))
        except ValueError:
            raise BadRequest("page must be a number") from None
        return filters, data.catalog(**filters, page=page_no)

    @app.get("/api/catalog")
    def catalog_json(request: Request):
        user_of(request)
        filters, result = _catalog(request)
        return {
            **result.to_json(),
            "filters": filters,
            "images": [r.model_dump(mode="json") for r in result.items],
        }

    @app.get("/catalog")
    def catalog(request: Request):
        user_of(request)
        filters, result = _catalog(request)
        context = {
            "filters": filters,
            "result": result,
            "sources": list(LabelSource),
            "statuses": list(ImageStatus),
        }
        return render(request, "catalog.html", context)

    @app.get("/api/catalog/{image_id:path}")
    def image_json(request: Request, image_id: str):
        user_of(request)
        found = data.image(checked_image_id(image_id))
        return {
            "record": found["record"].model_dump(mode="json"),
            "events": [e.model_dump(mode="json") for e in found["events"]],
            "model_version": found["model_version"],
            "prediction": found["prediction"].model_dump(mode="json")
            if found["prediction"]
            else None,
            "tasks": [t.model_dump(mode="json") for t in found["tasks"]],
        }

    def image_page(request: Request, image_id: str, *, conflict: dict | None = None):
        found = data.image(image_id)
        status = 409 if conflict else 200
        nearby = data.similar(similar, image_id) if similar is not None else None
        context = {**found, "conflict": conflict, "similar": nearby}
        return render(request, "image.html", context, status)

    @app.get("/catalog/{image_id:path}")
    def image_view(request: Request, image_id: str):
        user_of(request)
        return image_page(request, checked_image_id(image_id))

    @app.post("/retag/{image_id:path}")
    def retag(
        request: Request,
        image_id: str,
        facet: str = Form(...),
        label: str = Form(...),
        version: int = Form(...),
        csrf: str = Form(""),
    ):
        user = staff_of(request, csrf)
        checked_image_id(image_id)
        new = taxonomy.validate(facet, label or None)
        try:
            ports.labels.update_label(
                image_id,
                facet,
                new,
                source=LabelSource.STAFF,
                expected_version=version,
                evidence={"who": user.name, "via": "web retag"},
            )
        except ConflictError:
            data.changed()
            record = ports.labels.get(image_id)
            conflict = {
                "facet": facet,
                "wanted": new,
                "current": record.facets.get(facet) if record else None,
                "version": record.version if record else None,
            }
            return image_page(request, image_id, conflict=conflict)
        data.changed()
        return RedirectResponse(f"/catalog/{quote(image_id)}#history", status_code=303)

    # -- review queue -----------------------------------------------------------------------
    @app.get("/review")
    def review(request: Request, pos: int = 0, done: str = ""):
        user_of(request)
        queue = data.review_queue()
        pos = min(max(0, pos), max(0, len(queue) - 1))
        item = queue[pos] if queue else None
        record = ports.labels.get(item["image_id"]) if item else None
        context = {"item": item, "record": record, "pos": pos, "total": len(queue), "done": done}
        return render(request, "review.html", context)

    @app.post("/review/answer")
    def review_answer(
        request: Request,
        label: str = Form(...),
        pos: int = Form(0),
        task_id: str = Form(""),
        image_id: str = Form(""),
        facet: str = Form(""),
        version: int = Form(0),
        siblings: str = Form(""),
        csrf: str = Form(""),
    ):
        user = staff_of(request, csrf)
        if task_id:
            try:
                from shared.relabel import answer_as_staff  # numpy: only where answers go

                result = answer_as_staff(ports, task_id, label, who=user.name)
            except ConflictError as exc:
                result = f"conflict: {exc}"
        else:
            checked_image_id(image_id)
            others = [checked_image_id(i) for i in siblings.split(",") if i]
            new = taxonomy.validate(facet, label)
            evidence = {"who": user.name, "via": "web review"}
            try:
                old = ports.labels.get(image_id)
                updated = ports.labels.update_label(
                    image_id,
                    facet,
                    new,
                    source=LabelSource.STAFF,
                    expected_version=version,
                    evidence=evidence,
                )
                result = "answered"
            except ConflictError:
                result = "conflict: the label changed since the page was shown; nothing written"
            else:
                if others:  # the product's other photos with the same label: theirs too
                    from shared.relabel import apply_to_photos

                    # The update succeeded at `version`, so `old` is the record it replaced.
                    moved = apply_to_photos(
                        ports,
                        others,
                        facet,
                        old.facets.get(facet),
                        new,
                        source=LabelSource.STAFF,
                        evidence={**evidence, "product_photo": updated.image_id},
                    )
                    result = f"answered; {moved} more photos of the product changed"
        data.changed()
        return RedirectResponse("/review" + query(pos=pos, done=result), status_code=303)

    return app
