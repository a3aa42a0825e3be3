"""The web app in a real browser: `dressvision serve` (uvicorn on 127.0.0.1) over a tiny
embedded catalog, driven by headless Chromium (Debian's package, no browser download).

Sign in with the printed link, open F1, click a confusion cell, open an image, retag it, see the
new label event, answer a review task with the keyboard. Screenshots of each page go to
tests/web/screenshots/ (git-ignored).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.fake_catalog import build_catalog

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).parent / "screenshots"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make setup)"
    ),
]


@pytest.fixture
def served(tmp_path):
    home = tmp_path / "home"
    catalog = build_catalog(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "local.cli", "--home", str(home), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)(/signin\?token=\S+)", line)
        assert match, f"serve printed {line!r}"
        yield catalog, match.group(1), match.group(1) + match.group(2)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_staff_journey_in_chromium(served):
    from playwright.sync_api import expect, sync_playwright

    catalog, base, signin = served
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            page.goto(signin)
            expect(page).to_have_url(f"{base}/models")
            expect(page.locator("tr.current")).to_contain_text(catalog.version)
            page.screenshot(path=SHOTS / "models.png", full_page=True)

            page.get_by_role("link", name="F1", exact=True).click()
            expect(page).to_have_url(f"{base}/f1/{catalog.version}/silhouette")
            expect(page.locator("table.f1").first).to_contain_text("fit-and-flare")
            page.screenshot(path=SHOTS / "f1.png", full_page=True)

            page.get_by_role("link", name="confusion matrix").nth(1).click()  # the test split
            expect(page).to_have_url(f"{base}/confusion/{catalog.version}/silhouette/test")
            page.screenshot(path=SHOTS / "confusion.png", full_page=True)
            page.locator("table.confusion td a").first.click()
            expect(page.locator("ul.grid li img").first).to_be_visible()
            page.screenshot(path=SHOTS / "cell.png", full_page=True)

            page.locator("ul.grid li a").first.click()
            expect(page.locator("svg.photo rect.located-box")).to_be_visible()
            image_id = page.url.split("/catalog/", 1)[1]
            record = catalog.ports.labels.get(image_id)
            page.screenshot(path=SHOTS / "image.png", full_page=True)

            new = next(lb for lb in ("crew", "boat") if lb != record.facets["neckline"])
            row = page.locator("table.labels tr", has_text="neckline")
            row.get_by_label("new neckline").select_option(new)
            row.get_by_role("button", name="Retag").click()
            latest = page.locator("table.history tbody tr").first
            expect(latest).to_contain_text(new)
            expect(latest).to_contain_text("staff")
            expect(latest).to_contain_text("by local-staff")
            page.screenshot(path=SHOTS / "retagged.png", full_page=True)
            assert catalog.ports.labels.get(image_id).facets["neckline"] == new

            page.get_by_role("link", name="Review").click()
            expect(page.locator("main")).to_contain_text(catalog.task_id)
            page.screenshot(path=SHOTS / "review.png", full_page=True)
            task = catalog.ports.tasks.get(catalog.task_id)
            page.keyboard.press("1")  # the facet's first label
            expect(page.get_by_role("status")).to_contain_text("Last answer")
            page.screenshot(path=SHOTS / "review-answered.png", full_page=True)
            answered = catalog.ports.tasks.get(catalog.task_id)
            assert answered.status == "decided"
            assert answered.outcome == task.allowed[0]

            page.keyboard.press("s")  # any other letter skips
            expect(page.locator("h1 small")).to_contain_text("2 of")
        finally:
            browser.close()
    assert errors == []  # no CSP violation, no script error
