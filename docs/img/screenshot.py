"""The README's picture of the report: ``out/demo/report.html`` (``make demo``) in headless Chromium, to a PNG.

    python docs/img/screenshot.py [out/demo/report.html] [docs/img/report.png]

Debian's chromium (``make install`` installs it where missing), driven by playwright as tests/test_report_html.py
does, opens the page from its file:// URL with every other request aborted (the page is self-contained), and
writes the top of the page, 1,000 x 2,300 pixels: the contents, the network, the fit and the chip map.
"""
from __future__ import annotations

import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1000, "height": 2300}


def screenshot(page: Path, png: Path) -> Path:
    """Render ``page`` offline and write its first viewport to ``png``; refuses a page that asked the network."""
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT)

            def route(request_route):
                url = request_route.request.url
                if url.startswith(("file://", "data:")):
                    request_route.continue_()
                else:
                    outside.append(url)
                    request_route.abort()

            context.route("**/*", route)
            tab = context.new_page()
            tab.goto(page.resolve().as_uri(), wait_until="load")
            png.parent.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(png))
        finally:
            browser.close()
    if outside:
        raise SystemExit(f"{page}: asked for {outside[0]} (a report must be self-contained)")
    return png


if __name__ == "__main__":
    given = sys.argv[1:]
    page = Path(given[0] if given else "out/demo/report.html")
    if not page.is_file():
        raise SystemExit(f"{page}: no such page (make demo writes it)")
    print(screenshot(page, Path(given[1] if len(given) > 1 else "docs/img/report.png")))
