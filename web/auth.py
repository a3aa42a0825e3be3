"""Who is signed in, and what they may do.

Sessions are a signed cookie (itsdangerous, keyed by the deployment's web secret): HttpOnly,
SameSite=Lax, Secure on AWS. Each session carries its own CSRF token, which every form posts
back (session-bound tokens: a page on another site can neither read nor forge it).

Two ways to sign in:
- locally, one-time tokens printed by `dressvision serve` (as Jupyter does): `/signin?token=T`
  sets the session and the token is spent;
- on AWS, the Cognito hosted UI (authorization code with PKCE). The ID token comes straight from
  Cognito's token endpoint over TLS, which is what authenticates it (OpenID Connect Core
  3.1.3.7); its `cognito:groups` claim gives the role. Scripts call `/api/...` with a bearer
  token that API Gateway's JWT authorizer has verified before the request reaches the app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer

Role = Literal["viewer", "staff"]
ROLES: tuple[Role, ...] = ("viewer", "staff")
SESSION_COOKIE = "dv_session"
OAUTH_COOKIE = "dv_oauth"
SESSION_MAX_AGE_S = 12 * 3600
OAUTH_MAX_AGE_S = 600
STAFF_GROUP = "staff"
VIEWER_GROUP = "viewer"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    csrf: str

    @property
    def is_staff(self) -> bool:
        return self.role == "staff"


def role_from_groups(groups: object) -> Role | None:
    """The role of a Cognito user from its `cognito:groups` claim: a list in an ID token, a
    string like "[staff viewer]" in API Gateway's flattened claims. None: no access."""
    if isinstance(groups, str):
        names = set(groups.strip("[]").replace(",", " ").split())
    elif isinstance(groups, Iterable):
        names = {str(g) for g in groups}
    else:
        names = set()
    if STAFF_GROUP in names:
        return "staff"
    if VIEWER_GROUP in names:
        return "viewer"
    return None


def jwt_claims_unverified(token: str) -> dict:
    """The payload of a JWT, without checking its signature: only for a token received directly
    from the issuer's token endpoint over TLS."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise ValueError("not a JWT") from exc


TokenExchange = Callable[[str, str, str], dict]  # (code, verifier, redirect_uri) -> token JSON


@dataclass(frozen=True)
class CognitoConfig:
    """The user pool's hosted UI (domain like https://x.auth.eu-west-1.amazoncognito.com) and
    its public app client; `base_url` is where the app is reached (the callback's origin)."""

    domain: str
    client_id: str
    base_url: str
    exchange: TokenExchange | None = None  # tests inject one; default: Cognito's endpoint

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/auth/callback"

    def authorize_url(self, state: str, challenge: str) -> str:
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": "openid email profile",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.domain}/oauth2/authorize?{query}"

    def logout_url(self) -> str:
        query = urllib.parse.urlencode(
            {"client_id": self.client_id, "logout_uri": f"{self.base_url}/signin"}
        )
        return f"{self.domain}/logout?{query}"

    def exchange_code(self, code: str, verifier: str) -> dict:
        if self.exchange is not None:
            return self.exchange(code, verifier, self.redirect_uri)
        body = urllib.parse.urlencode(
            {
                "grant_type": "authorization_code",
                "client_id": self.client_id,
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.domain}/oauth2/token",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) of RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class AuthConfig:
    """How the app authenticates. `sign_in_tokens`: one-time token -> role (local serve);
    `cognito`: the hosted UI (AWS). `secure_cookies`: set on AWS (HTTPS only)."""

    secret: bytes
    secure_cookies: bool = False
    sign_in_tokens: dict[str, Role] = field(default_factory=dict)
    cognito: CognitoConfig | None = None

    def __post_init__(self) -> None:
        self._tokens_lock = threading.Lock()  # two requests cannot spend one token twice
        self._sessions = URLSafeTimedSerializer(self.secret, salt="dressvision-session")
        self._oauth = URLSafeTimedSerializer(self.secret, salt="dressvision-oauth")

    def spend_token(self, token: str) -> Role | None:
        """The role of a one-time sign-in token, which is spent; None if unknown or spent."""
        with self._tokens_lock:
            for known in list(self.sign_in_tokens):
                if hmac.compare_digest(known.encode(), token.encode()):
                    return self.sign_in_tokens.pop(known)
        return None

    def new_session(self, name: str, role: Role) -> str:
        return self._sessions.dumps({"u": name, "r": role, "c": secrets.token_urlsafe(24)})

    def read_session(self, cookie: str | None) -> User | None:
        if not cookie:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, Mapping) or data.get("r") not in ROLES:
            return None
        return User(name=str(data["u"]), role=data["r"], csrf=str(data["c"]))

    def oauth_cookie(self, state: str, verifier: str) -> str:
        return self._oauth.dumps({"s": state, "v": verifier})

    def read_oauth_cookie(self, cookie: str | None) -> tuple[str, str] | None:
        if not cookie:
            return None
        try:
            data = self._oauth.loads(cookie, max_age=OAUTH_MAX_AGE_S)
        except BadSignature:
            return None
        return str(data["s"]), str(data["v"])


def api_gateway_user(scope: Mapping) -> User | None:
    """The user of a request API Gateway's JWT authorizer verified (Mangum puts the Lambda
    event in the ASGI scope). Such requests carry no cookie, so no CSRF token applies."""
    event = scope.get("aws.event") or {}
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {})
    claims = claims.get("claims") if isinstance(claims, Mapping) else None
    if not claims:
        return None
    role = role_from_groups(claims.get("cognito:groups"))
    if role is None:
        return None
    name = claims.get("email") or claims.get("username") or claims.get("sub") or "?"
    return User(name=str(name), role=role, csrf="")
