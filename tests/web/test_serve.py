"""`dressvision serve`: uvicorn on 127.0.0.1, a printed one-time sign-in link."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from tests.web.fake_catalog import build_catalog


def test_serve_prints_a_link_that_signs_in_once(tmp_path):
    home = tmp_path / "home"
    build_catalog(home, 4)
    command = [sys.executable, "-m", "local.cli", "--home", str(home), "serve", "--port", "0"]
    server = subprocess.Popen([*command, "--viewer-link"], stdout=subprocess.PIPE, text=True)
    try:
        staff_line, viewer_line = server.stdout.readline(), server.stdout.readline()
        base, token = re.search(
            r"(http://127\.0\.0\.1:\d+)/signin\?token=(\S+)", staff_line
        ).groups()
        assert "(viewer)" in viewer_line
        with httpx.Client(base_url=base) as client:
            assert client.get("/health").json() == {"status": "ok"}
            assert client.get("/models").status_code == 303
            signed_in = client.get("/signin", params={"token": token})
            assert signed_in.status_code == 303
            assert "local-staff (staff)" in client.get("/models").text
        with httpx.Client(base_url=base) as stranger:
            assert stranger.get("/signin", params={"token": token}).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=10)
