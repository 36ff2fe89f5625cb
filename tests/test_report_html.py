"""The report page in a real browser: Debian's headless Chromium, driven by playwright, opens it from a file://
URL with the network blocked, and every figure must load, no console error may appear, and a screenshot is
written to out/report_screenshot.png for a person to look at."""
from pathlib import Path

import pytest
from netgen import digits_mlp

import neuromap
from neuromap.reporting import report

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parent.parent / "out" / "report_screenshot.png"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                "(make install installs it)")


def open_page(page_path: Path, profile: Path) -> dict:
    """Load the page in headless Chromium with every non-file request aborted; what the browser saw."""
    from playwright.sync_api import sync_playwright

    seen: dict = {"requests": [], "console_errors": [], "page_errors": [], "failed": []}
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM), args=ARGS,
                                                        headless=True, viewport={"width": 1000, "height": 900})
        try:
            def route(request_route):
                url = request_route.request.url
                if url.startswith("file://") or url.startswith("data:"):
                    request_route.continue_()
                else:
                    seen["requests"].append(url)
                    request_route.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: seen["console_errors"].append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))
            page.on("requestfailed", lambda r: seen["failed"].append(r.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            seen["images"] = page.evaluate(
                "Array.from(document.images).map(i => ({id: i.id, complete: i.complete, w: i.naturalWidth, "
                "h: i.naturalHeight}))")
            seen["figure_sections"] = page.evaluate("document.querySelectorAll('section.has-figure').length")
            seen["sections"] = page.evaluate("document.querySelectorAll('section').length")
            seen["toc"] = page.evaluate("Array.from(document.querySelectorAll('nav a')).map(a => "
                                        "document.querySelector(a.getAttribute('href')) !== null)")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            context.close()
    return seen


@pytest.mark.slow
def test_report_renders_in_headless_chromium_offline(tmp_path):
    mapping = neuromap.compile(digits_mlp(seed=22, hidden=64), "testchip")   # three cores: the chip map has links
    result = report(mapping, tmp_path / "report.html", limit=20, steps=12, sweep=(4, 8, 12))
    seen = open_page(result.page, tmp_path / "profile")
    assert seen["requests"] == [] and seen["failed"] == [], seen
    assert seen["console_errors"] == [] and seen["page_errors"] == [], seen
    assert len(seen["images"]) == seen["figure_sections"] == len(result.figures) == 7
    for img in seen["images"]:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, img
    assert seen["sections"] == 9 and all(seen["toc"]) and len(seen["toc"]) == 9
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")
