"""`dressvision serve`: the quality web app on this machine, over the home folder's state."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys


def register(commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="the quality web app (models, F1, confusion, errors, retagging, review)",
        description=(
            "Serve the web app with uvicorn and print its URL with a one-time sign-in token "
            "(as Jupyter does): opening it signs you in as staff. Plain HTTP: keep the default "
            "loopback host unless the network in between is trusted."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    parser.add_argument(
        "--viewer-link",
        action="store_true",
        help="also print a one-time link that signs in a viewer (no retagging, no answers)",
    )
    parser.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(args) -> int:
    import uvicorn

    from local.runtime import LocalRuntime
    from shared.image_links import secret_key
    from shared.similarity import similar_query
    from web.app import create_app
    from web.auth import AuthConfig

    runtime = LocalRuntime.open(args.home)
    tokens = {secrets.token_urlsafe(24): "staff"}
    if args.viewer_link:
        tokens[secrets.token_urlsafe(24)] = "viewer"
    auth = AuthConfig(secret=secret_key(runtime.settings), sign_in_tokens=dict(tokens))
    app = create_app(runtime.ports, auth=auth, similar=similar_query(runtime.ports))

    # Bind first, so the printed URL carries the real port (also with --port 0).
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    if not _is_loopback(args.host):
        print(f"warning: serving plain HTTP on {args.host}; anyone on the way can read it",
              file=sys.stderr)  # fmt: skip
    for token, role in tokens.items():
        print(f"dressvision web app ({role}): http://{shown}:{port}/signin?token={token}")
    print("each link signs in once; Ctrl+C stops the server", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0
